"""The catalog pages in-process: status, content, escaping of hostile text, routes that must
not be shadowed, HTML 404s, page sizes."""

from __future__ import annotations

import html
import re

from support.clock import SettableClock

from .conftest import BACKENDS
from .helpers import Client, ok, seed

MAX_PAGE = 100 * 1024


async def get_page(client: Client, path: str, status: int = 200) -> str:
    resp = await client.get(path, allow_redirects=False)
    body = await resp.read()
    assert resp.status == status, (path, resp.status, body[:500])
    assert resp.content_type == "text/html", (path, resp.content_type)
    assert len(body) < MAX_PAGE, (path, len(body))
    assert "default-src 'self'" in resp.headers["Content-Security-Policy"]
    return body.decode()


def no_hostile_markup(page: str) -> None:
    """No script, event handler or javascript: URL made it into the HTML as markup."""
    assert "<script>alert" not in page and "<img src=x" not in page
    assert not re.search(r"<[a-z]+[^>]*\son[a-z]+=", page)  # no event handler attribute
    assert 'href="javascript:' not in page and 'src="x"' not in page
    scripts = re.findall(r"<script[^>]*>", page)
    assert scripts == ['<script src="/-/static/copy.js" defer>'], scripts


async def test_home_lists_namespaces_releases_and_recent_images(client: Client,
                                                                 clock: SettableClock) -> None:
    empty = await get_page(client, "/")
    assert "No namespaces yet" in empty and 'action="/search"' in empty
    data = await seed(client)
    clock.advance(days=3, seconds=60)
    page = await get_page(client, "/")
    assert '<a href="/f25">f25</a>' in page
    assert f'href="/-/releases/{data["release"]}"' in page
    assert 'href="/f25/cockpit"' in page and 'href="/-/images/fedora"' in page
    assert 'name="viewport"' in page and 'href="#main"' in page  # phone width, skip link
    assert '<time datetime="2025-06-02T09:00:00Z" title="2025-06-02 09:00 UTC">' in page
    assert "(3 days ago)" in page
    no_hostile_markup(page)
    assert "&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt;" in page  # shown, as text


@BACKENDS
async def test_image_page_shows_streams_pull_commands_help_and_content(client: Client) -> None:
    data = await seed(client)
    page = await get_page(client, "/f25/cockpit")
    no_hostile_markup(page)
    # summary escaped, streams with digests, NVRs, release of the last move
    assert "Cockpit web console &lt;script&gt;" in page
    for tag in ("latest", "130", "129", "130-1.f25docker", "129-1.f25docker"):
        assert f"<th scope=\"row\">{tag}" in page, tag
    assert data["130"][:19] in page and "cockpit-130-1.f25docker" in page
    assert page.count(f'href="/-/releases/{data["release"]}"') >= 5
    # copyable pull commands from the public URL (https: no --tls-verify)
    assert "podman pull registry.example/f25/cockpit:latest" in page
    assert "skopeo copy docker://registry.example/f25/cockpit:latest oci:cockpit:latest" in page
    assert "docker pull registry.example/f25/cockpit:latest" in page
    assert page.count("data-copy") >= 8
    # the help file, rendered and sanitized
    assert "<h3>Cockpit</h3>" in page and "<em>web</em>" in page and "<table>" in page
    assert 'href="https://cockpit-project.org/"' in page
    assert "&lt;script&gt;alert('pwned')&lt;/script&gt;" in page
    # maintainers, source, labels, layers, packages, builds (131 pending), history
    assert "alice" in page
    assert 'href="https://src.example/cockpit.git"' in page
    assert "javascript:alert(1)" in page  # the url label, as text
    assert "Layers (2," in page and "bash" in page and "5.2.15-3" in page
    assert "cockpit-131-1.f25docker" in page and "candidate" in page
    assert "Tag history" in page and "rel-eng" in page
    assert "registered without a review" in page
    # release signatures: the released builds are signed, and .sig tags are no streams
    assert '<span class="badge signed">signed</span> by the f25 release key' in page
    assert 'href="/keys/f25.pub"' in page
    assert page.count('title="release signature present">signed') == 5
    assert ".sig" not in page


async def test_eol_badges(client: Client) -> None:
    await seed(client)
    await ok(await client.post("/api/v1/images/f25/cockpit/streams/129/eol", json={}), 200)
    page = await get_page(client, "/f25/cockpit")
    assert re.search(r'<th scope="row">129 <span class="badge eol">EOL</span>', page)
    assert re.search(r'<th scope="row">129-1.f25docker <span class="badge eol">EOL', page)
    assert not re.search(r'<th scope="row">130 <span class="badge eol">', page)
    assert not re.search(r'<th scope="row">latest <span class="badge eol">', page)


async def test_plain_http_public_url_turns_tls_verification_off(make_client) -> None:  # type: ignore[no-untyped-def]
    from strata.server.urls import PublicUrl
    client = await make_client(public_url=PublicUrl.parse("http://127.0.0.1:5000"))
    await seed(client)
    page = await get_page(client, "/f25/cockpit")
    assert "podman pull --tls-verify=false 127.0.0.1:5000/f25/cockpit:latest" in page
    assert "skopeo copy --src-tls-verify=false docker://127.0.0.1:5000/f25/cockpit:latest" in page


async def test_namespace_release_review_and_root_pages(client: Client) -> None:
    data = await seed(client)
    ns = await get_page(client, "/f25")
    assert "f25docker" in ns and 'href="/f25/cockpit"' in ns and 'href="/f25/newthing"' in ns
    assert "in-review" in ns and 'href="/-/images/fedora"' in ns
    assert f'href="/-/releases/{data["release"]}"' in ns
    rel = await get_page(client, f"/-/releases/{data['release']}")
    assert "Release notes" in rel and "cockpit-130-1.f25docker" in rel
    assert 'href="/f25/cockpit"' in rel
    no_hostile_markup(rel)
    # a root image: its own page, and /<name> redirects there when no namespace has that name
    root = await get_page(client, "/-/images/fedora")
    assert "podman pull registry.example/fedora:latest" in root
    assert "no help file" in root
    resp = await client.get("/fedora", allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == "/-/images/fedora"
    new = await get_page(client, "/f25/newthing")
    assert "in-review" in new and "Nothing has been released yet" in new


async def test_unknown_things_are_html_404s(client: Client) -> None:
    await seed(client)
    for path in ("/f25/nope", "/nope", "/nope/nope", "/-/releases/nope", "/-/reviews/99",
                 "/-/reviews/abc", "/-/builds/7", "/-/images/a/b/c", "/F25/Cockpit",
                 "/-/images/nope", "/search/x", "/favicon.ico"):
        page = await get_page(client, path, 404)
        assert "Not found" in page, path


async def test_other_routes_are_not_shadowed(client: Client) -> None:
    await seed(client)
    assert (await client.get("/healthz")).status == 200
    resp = await client.get("/v2/f25/cockpit/tags/list")
    assert resp.status == 200 and "latest" in (await resp.json())["tags"]
    assert (await client.get("/v2/")).status == 200
    assert (await client.get("/api/v1/images/f25/cockpit")).status == 200
    css = await client.get("/-/static/site.css")
    assert css.status == 200 and css.content_type == "text/css"
    js = await client.get("/-/static/copy.js")
    assert js.status == 200 and "clipboard" in await js.text()
    # unknown paths under the API's and the registry's prefixes keep their JSON 404
    for path in ("/api/nothing", "/v1/nothing", "/auth/x", "/keys/x", "/metrics/x",
                 "/healthz/x", "/api/v1/nothing-here"):
        resp = await client.get(path)
        assert resp.status == 404 and resp.content_type == "application/json", path
        assert (await resp.json())["errors"][0]["code"] == "NOT_FOUND"


async def test_a_namespace_named_like_a_route_gets_its_pages_elsewhere(client: Client) -> None:
    await ok(await client.post("/api/v1/namespaces", json={
        "name": "search", "dist_tag": "s1", "anchor": "2025-06-10"}), 201)
    await ok(await client.post("/api/v1/images", json={
        "repository": "search/tool", "summary": "colliding", "reason": "t"}), 201)
    home = await get_page(client, "/")
    assert 'href="/search"' not in home and 'href="/-/namespaces/search"' in home
    assert "search/tool" in await get_page(client, "/-/namespaces/search")
    listing = await get_page(client, "/search?q=tool")
    assert 'href="/-/images/search/tool"' in listing
    page = await get_page(client, "/-/images/search/tool")
    assert "colliding" in page
    await get_page(client, "/search/tool", 404)


async def test_hostile_names_in_paths_are_escaped(client: Client) -> None:
    await seed(client)
    page = await get_page(client, "/search?q=%3Cscript%3Ealert(1)%3C/script%3E")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    no_hostile_markup(page)
    page = await get_page(client, "/-/releases/%3Cimg%20src=x%3E", 404)
    no_hostile_markup(page)


async def test_big_images_stay_under_100_kb(client: Client) -> None:
    from .helpers import push_build
    await seed(client)
    packages = [{"name": f"package-number-{i:05d}", "version": f"1.{i}-1.fc25",
                 "arch": "x86_64"} for i in range(3000)]
    big_help = "# Big\n\n" + ("A long paragraph of help text. " * 40 + "\n\n") * 400
    digests = [await push_build(client, "f25/cockpit", "130", f"{n}.f25docker",
                                packages=packages, help_text=big_help) for n in range(2, 36)]
    oob = await ok(await client.post("/api/v1/releases/oob", json={
        "references": [f"f25/cockpit@{d}" for d in digests], "reason": "respin",
        "advisories": ["FEDORA-1"]}), 201)
    release = await get_page(client, f"/-/releases/{oob['name']}")
    assert "cockpit-130-35.f25docker" in release
    page = await get_page(client, "/f25/cockpit")
    print("image page bytes:", len(page.encode()))
    assert "package-number-00000" in page and "more in" in page and "truncated here" in page
    assert "older NVR tags are not listed" in page


async def test_review_and_build_pages(make_client, db) -> None:  # type: ignore[no-untyped-def]
    from strata.meta.build_store import BuildStore
    from strata.meta.database import Database
    from strata.server.api.builds import BuildsApi
    from strata.server.builds import BuildService

    from .helpers import auth

    store = BuildStore(Database(db))
    client = await make_client(builds=BuildService(BuildsApi(store, ("https://",)), None))
    await seed(client)
    submitter = auth(("sam", "x"))
    review = await ok(await client.post("/api/v1/reviews", json={
        "repository": "f25/tool", "git": "https://src.example/tool.git", "branch": "f25"},
        headers=submitter), 201)
    await ok(await client.post(f"/api/v1/reviews/{review['id']}/comment", json={
        "comment": "<b>hi</b> please look"}, headers=submitter))
    page = await get_page(client, f"/-/reviews/{review['id']}")
    assert "Review request" in page and "f25/tool" in page and "sam" in page
    assert "&lt;b&gt;hi&lt;/b&gt; please look" in page and "<b>hi" not in page
    no_hostile_markup(page)
    image = await get_page(client, "/f25/tool")
    assert f'href="/-/reviews/{review["id"]}"' in image and ": open" in image
    job = await ok(await client.post("/api/v1/builds", json={"repository": "f25/cockpit"},
                                     headers=auth(("rel-eng", "x"))), 202)
    await store.append_log(job["id"], "step 1/3 <script>alert(1)</script>\n")
    page = await get_page(client, f"/-/builds/{job['id']}")
    assert "queued" in page and "https://src.example/cockpit.git" in page
    assert "step 1/3 &lt;script&gt;alert(1)&lt;/script&gt;" in page
    no_hostile_markup(page)


@BACKENDS
async def test_search_page_words_filters_packages_and_pages(client: Client) -> None:
    data = await seed(client)
    page = await get_page(client, "/search?q=cockpit")
    assert 'href="/f25/cockpit"' in page and "1 image" not in page
    assert 'href="/api/v1/search?q=cockpit"' in page  # the same results as JSON
    page = await get_page(client, "/search?q=console")  # a word of the summary
    assert 'href="/f25/cockpit"' in page
    page = await get_page(client, "/search?status=in-review")
    assert 'href="/f25/newthing"' in page and 'href="/f25/cockpit"' not in page
    page = await get_page(client, "/search?q=cockpit&namespace=f25&eol=false")
    assert 'href="/f25/cockpit"' in page and '<option value="f25" selected>' in page
    assert "No image matches" in await get_page(client, "/search?q=nothingmatchesthis")
    # which builds contain a package, with the release each was in
    page = await get_page(client, "/search?package=bash%3D5.2.15-3")
    assert "Builds containing bash=5.2.15-3" in page
    assert "cockpit-130-1.f25docker" in page and "cockpit-131-1.f25docker" in page
    assert f'href="/-/releases/{data["release"]}"' in page
    assert "No build contains" in await get_page(client, "/search?package=zsh")
    # a bad filter is a 400 page that says what is wrong, not a 500 or JSON
    page = await get_page(client, "/search?status=bogus", 400)
    assert "status must be one of" in page
    page = await get_page(client, "/search?q=x&last=not-a-cursor", 400)
    assert "cursor" in page
    # more results than fit: a next page
    for i in range(30):
        await ok(await client.post("/api/v1/images", json={
            "repository": f"f25/tool{i:02d}", "summary": "a widget tool", "reason": "t"}), 201)
    first = await get_page(client, "/search?q=widget")
    assert first.count('href="/f25/tool') == 25
    nxt = re.search(r'<a rel="next" href="([^"]+)">', first)
    assert nxt is not None
    second = await get_page(client, html.unescape(nxt[1]))
    assert second.count('href="/f25/tool') == 5 and 'rel="next"' not in second
