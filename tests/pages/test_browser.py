"""The catalog in a real browser: Playwright (PyPI) driving Debian's ``chromium``, headless,
against the app served on a loopback port. A user searches, opens an image page, follows a
release link and copies a pull command; the pages work at phone width, from the keyboard and
without JavaScript.

Screenshots are saved as test artefacts under the test's pytest temp dir:
``<basetemp>/<test name>/screenshots/*.png`` (``pytest --basetemp=DIR`` to choose where).
Without chromium the tests fail in CI (``$CI``) and are skipped elsewhere.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from support.clients import require_tool

from .helpers import Client, seed

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 30_000


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    chromium = require_tool("chromium")
    async with async_playwright() as p:
        launched = await p.chromium.launch(executable_path=chromium, headless=True, args=ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    path = tmp_path / "screenshots"
    path.mkdir()
    return path


async def new_page(browser: Browser, **options: object) -> Page:
    context = await browser.new_context(**options)  # type: ignore[arg-type]
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    return page


async def test_search_open_image_follow_release_and_copy(browser: Browser, client: Client,
                                                         shots: Path) -> None:
    data = await seed(client)
    base = str(client.make_url("/")).rstrip("/")
    page = await new_page(browser, permissions=["clipboard-read", "clipboard-write"],
                          viewport={"width": 1280, "height": 900})
    await page.goto(base + "/")
    await expect(page.get_by_role("heading", name="Container images")).to_be_visible()
    await page.screenshot(path=shots / "home.png", full_page=True)
    # search from the box in the header
    await page.get_by_role("searchbox", name="Search images").fill("cockpit")
    await page.get_by_role("button", name="Search").click()
    await page.wait_for_url("**/search?q=cockpit")
    await page.screenshot(path=shots / "search.png", full_page=True)
    # open the image page from the results
    await page.get_by_role("link", name="f25/cockpit").click()
    await page.wait_for_url("**/f25/cockpit")
    await expect(page.get_by_role("heading", level=1)).to_contain_text("f25/cockpit")
    await expect(page.locator(".help h3")).to_have_text("Cockpit")
    assert await page.evaluate("typeof window.alertCalled") == "undefined"
    await page.screenshot(path=shots / "image.png", full_page=True)
    # copy the podman pull command
    first_copy = page.locator("#pull-h ~ pre .copy").first
    await first_copy.click()
    await expect(first_copy).to_have_text("Copied")
    copied = await page.evaluate("navigator.clipboard.readText()")
    assert copied == "podman pull registry.example/f25/cockpit:latest"
    assert await page.get_attribute("body", "data-last-copied") == copied
    await expect(page.locator("#copy-status")).to_have_text(f"Copied: {copied}")
    # follow the release of the latest stream
    row = page.locator("tr.kind-latest")
    await row.get_by_role("link", name=data["release"]).click()
    await page.wait_for_url(f"**/-/releases/{data['release']}")
    await expect(page.get_by_role("heading", name="Release notes")).to_be_visible()
    await expect(page.locator(".notes")).to_contain_text("cockpit-130-1.f25docker")
    await page.screenshot(path=shots / "release.png", full_page=True)
    for name in ("home", "search", "image", "release"):
        assert (shots / f"{name}.png").stat().st_size > 1000


async def test_phone_width_keyboard_and_no_javascript(browser: Browser, client: Client,
                                                      shots: Path) -> None:
    await seed(client)
    base = str(client.make_url("/")).rstrip("/")
    phone = await new_page(browser, viewport={"width": 375, "height": 740},
                           is_mobile=True, has_touch=True)
    for path in ("/", "/f25", "/f25/cockpit"):
        await phone.goto(base + path)
        overflow = await phone.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, (path, overflow)
    await phone.screenshot(path=shots / "image-phone.png", full_page=True)
    # keyboard: the first Tab reaches the skip link, which moves focus to the content
    desk = await new_page(browser)
    await desk.goto(base + "/f25/cockpit")
    await desk.keyboard.press("Tab")
    assert await desk.evaluate("document.activeElement.className") == "skip"
    assert await desk.evaluate("getComputedStyle(document.activeElement).left") != "-9999px"
    await desk.keyboard.press("Enter")
    assert await desk.evaluate("document.activeElement.id") == "main"
    await desk.keyboard.press("Tab")
    focused = await desk.evaluate("document.activeElement.tagName")
    outline = await desk.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert focused in ("A", "BUTTON") and outline != "none"
    # without JavaScript: the same content, the commands as plain text, no copy buttons
    nojs = await new_page(browser, java_script_enabled=False)
    await nojs.goto(base + "/f25/cockpit")
    await expect(nojs.locator("pre.cmd code").first).to_have_text(
        "podman pull registry.example/f25/cockpit:latest")
    assert await nojs.locator("button.copy").count() == 0
    await nojs.goto(base + "/search?q=cockpit")
    await expect(nojs.get_by_role("link", name="f25/cockpit")).to_be_visible()
    await nojs.screenshot(path=shots / "search-nojs.png", full_page=True)
