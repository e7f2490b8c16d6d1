"""/api/v1/browse: the pages' content as JSON; and who sees what, on the pages and in the JSON,
when only some namespaces are public."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiohttp

from strata.auth.policy import public_namespaces
from strata.server.auth import TokenAuth

from .conftest import BACKENDS, PASSWORD
from .helpers import HOSTILE, Client, ok, push_build, seed

USER = ("rel", PASSWORD)
REL = {"Authorization": aiohttp.encode_basic_auth(*USER)}
MAINT = {"Authorization": aiohttp.encode_basic_auth("maint", PASSWORD)}


async def error(resp: aiohttp.ClientResponse, status: int, code: str) -> None:
    body = await resp.json()
    assert resp.status == status, body
    assert body["errors"][0]["code"] == code, body


@BACKENDS
async def test_home_namespace_and_image_json(client: Client) -> None:
    data = await seed(client)
    home = await ok(await client.get("/api/v1/browse/home"))
    assert [n["name"] for n in home["namespaces"]] == ["f25"]
    assert [r["name"] for r in home["releases"]] == [data["release"]]
    assert {c["repository"] for c in home["recent"]} == {"f25/cockpit", "fedora"}
    ns = await ok(await client.get("/api/v1/browse/namespaces/f25"))
    assert {c["repository"]: c["status"] for c in ns["images"]} == {
        "f25/cockpit": "active", "fedora": "active", "f25/newthing": "in-review"}
    assert [r["name"] for r in ns["releases"]] == [data["release"]]
    image = await ok(await client.get("/api/v1/browse/images/f25/cockpit"))
    assert image["summary"] == f"Cockpit web console {HOSTILE}"  # JSON carries it as is
    streams = {s["tag"]: s for s in image["streams"]}
    assert [s["tag"] for s in image["streams"]] == [
        "latest", "130", "129", "130-1.f25docker", "129-1.f25docker"]
    assert streams["latest"]["digest"] == data["130"] and streams["129"]["digest"] == data["129"]
    assert streams["latest"]["nvr"] == "cockpit-130-1.f25docker"
    assert streams["latest"]["release"] == data["release"] and streams["latest"]["moved_at"]
    assert streams["latest"]["signed"] is True and image["signature"]["signed"] is True
    assert streams["130"]["pull"] == {
        "podman": "podman pull registry.example/f25/cockpit:130",
        "skopeo": "skopeo copy docker://registry.example/f25/cockpit:130 oci:cockpit:130",
        "docker": "docker pull registry.example/f25/cockpit:130"}
    assert image["shown_digest"] == data["130"]
    assert image["labels"]["version"] == "130" and image["labels"]["url"].startswith("java")
    assert len(image["layers"]) == 2 and image["size"] == sum(x["size"] for x in image["layers"])
    assert [p["name"] for p in image["packages"]] == ["bash", "cockpit-ws"]
    assert image["inputs"]["source"]["commit"] == "a" * 40
    assert "<h3>Cockpit</h3>" in image["help_html"] and "<script>" not in image["help_html"]
    assert [b["nvr"] for b in image["builds"]] == [
        "cockpit-131-1.f25docker", "cockpit-130-1.f25docker", "cockpit-129-1.f25docker"]
    assert all(not e["tag"].endswith(".sig") for e in image["history"])
    assert {e["tag"] for e in image["history"]} == {
        "latest", "130", "129", "130-1.f25docker", "129-1.f25docker"}
    assert image["reviews"] == [] and image["eol_versions"] == []
    root = await ok(await client.get("/api/v1/browse/images/_/fedora"))
    assert root["repository"] == "fedora" and root["help_html"] is None
    assert root["streams"][0]["pull"]["podman"] == "podman pull registry.example/fedora:latest"


async def test_browse_errors(client: Client) -> None:
    await seed(client)
    await error(await client.get("/api/v1/browse/images/f25/nope"), 404, "NOT_FOUND")
    await error(await client.get("/api/v1/browse/images/_/nope"), 404, "NOT_FOUND")
    await error(await client.get("/api/v1/browse/images/F25/UPPER"), 400, "INVALID")
    await error(await client.get("/api/v1/browse/namespaces/nope"), 404, "NOT_FOUND")
    await error(await client.post("/api/v1/browse/home"), 405, "UNSUPPORTED")


async def test_an_image_without_content_still_shows(client: Client) -> None:
    """An image registered but never built: no streams, no layers, nothing to pull."""
    await seed(client)
    image = await ok(await client.get("/api/v1/browse/images/f25/newthing"))
    assert image["streams"] == [] and image["layers"] == [] and image["shown_digest"] is None
    assert image["signature"] is None and image["status"] == "in-review"


async def private_setup(make_client: Callable[..., Awaitable[Client]],
                        make_auth: Callable[..., TokenAuth]) -> Client:
    """f25 public, f26 private (pulls need an account): f26/private built and released."""
    client = await make_client(auth=make_auth(public_namespaces(["f25"])), public_url=None)
    await seed(client, user=USER)
    await ok(await client.post("/api/v1/namespaces", json={
        "name": "f26", "dist_tag": "f26docker", "anchor": "2025-06-10"}, headers=REL), 201)
    await ok(await client.post("/api/v1/images", json={
        "repository": "f26/private", "summary": "SECRET-SUMMARY", "reason": "t"},
        headers=REL), 201)
    await push_build(client, "f26/private", "1", "1.f26docker", user=USER)
    await ok(await client.post("/api/v1/releases/publish", json={"namespace": "f26"},
                               headers=REL), 201)
    return client


async def test_private_namespaces_are_hidden_from_anonymous_pages_and_json(
        make_client: Callable[..., Awaitable[Client]],
        make_auth: Callable[..., TokenAuth]) -> None:
    client = await private_setup(make_client, make_auth)
    # the registry itself refuses an anonymous pull of f26/private ...
    assert (await client.get("/v2/f26/private/tags/list")).status == 401
    # ... so no page shows it, nor its namespace or releases
    for path in ("/", "/f25", "/search?q=private", "/search?q=SECRET"):
        resp = await client.get(path)
        text = await resp.text()
        assert resp.status == 200, path
        assert "f26" not in text and "SECRET-SUMMARY" not in text, path
    for path in ("/f26", "/f26/private", "/-/images/f26/private", "/-/namespaces/f26",
                 "/-/releases/f26-2025-06-10"):
        resp = await client.get(path, allow_redirects=False)
        assert resp.status == 404 and "SECRET" not in await resp.text(), path
    home = await ok(await client.get("/api/v1/browse/home"))
    assert [n["name"] for n in home["namespaces"]] == ["f25"]
    assert all(not r["name"].startswith("f26") for r in home["releases"])
    assert all(c["repository"] != "f26/private" for c in home["recent"])
    await error(await client.get("/api/v1/browse/images/f26/private"), 404, "NOT_FOUND")
    await error(await client.get("/api/v1/browse/namespaces/f26"), 404, "NOT_FOUND")
    # the public namespace is there for everyone
    assert (await ok(await client.get("/api/v1/browse/images/f25/cockpit")))["streams"]
    # accounts that may pull it see it in the JSON
    for headers in (REL, MAINT):
        image = await ok(await client.get("/api/v1/browse/images/f26/private", headers=headers))
        assert image["summary"] == "SECRET-SUMMARY" and image["streams"]
    home = await ok(await client.get("/api/v1/browse/home", headers=REL))
    assert "f26/private" in {c["repository"] for c in home["recent"]}
    # bad credentials are refused, not shown as anonymous
    bad = {"Authorization": aiohttp.encode_basic_auth("rel", "wrong-password-here")}
    await error(await client.get("/api/v1/browse/home", headers=bad), 401, "UNAUTHORIZED")


async def test_namespace_images_come_in_pages(client: Client) -> None:
    await ok(await client.post("/api/v1/namespaces", json={
        "name": "f27", "dist_tag": "f27docker", "anchor": "2025-06-10"}), 201)
    names = [f"f27/img{i:03d}" for i in range(105)]
    for name in names:
        await ok(await client.post("/api/v1/images", json={"repository": name, "reason": "t"}),
                 201)
    first = await ok(await client.get("/api/v1/browse/namespaces/f27"))
    assert [c["repository"] for c in first["images"]] == names[:100]
    assert first["more_after"] == names[99]
    second = await ok(await client.get("/api/v1/browse/namespaces/f27",
                                       params={"last": first["more_after"]}))
    assert [c["repository"] for c in second["images"]] == names[100:]
    assert second["more_after"] is None
    await error(await client.get("/api/v1/browse/namespaces/f27", params={"last": "A B"}),
                400, "INVALID")
    page = await client.get("/f27")
    text = await page.text()
    assert "f27/img099" in text and "f27/img100" not in text
    assert 'href="?after=f27/img099"' in text
    text = await (await client.get("/f27?after=f27/img099")).text()
    assert "f27/img100" in text and "f27/img099" not in text and "More images" not in text
