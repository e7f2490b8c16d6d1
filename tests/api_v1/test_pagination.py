"""Every /api/v1 list is paginated one way: ``n`` and ``last``, a ``Link: <...>; rel="next"``
header while more follow (as /v2/ pages its lists); the CLI's client follows the pages."""

from __future__ import annotations

import re
from typing import Any

import aiohttp
import pytest

from strata.client.api import ApiClient

from .conftest import ADMIN, ADMIN_PASSWORD, Client

NEXT = re.compile(r'^<(/api/v1/[^>]*)>; rel="next"$')


async def walk(client: Client, path: str, key: str, *,
               headers: dict[str, str] | None = None) -> tuple[list[list[Any]], list[str]]:
    """Every page of a list, following its Link headers; the pages and the links."""
    pages, links = [], []
    next_path: str | None = path
    while next_path is not None:
        resp = await client.get(next_path, headers=headers or {})
        assert resp.status == 200, await resp.text()
        pages.append((await resp.json())[key])
        link = resp.headers.get("Link")
        next_path = None
        if link is not None:
            match = NEXT.match(link)
            assert match, link
            next_path = match.group(1)
            links.append(next_path)
        assert len(pages) < 50
    return pages, links


async def test_namespaces_and_images_page_by_key(client: Client) -> None:
    names = [f"p{i:02d}" for i in range(7)]
    for name in names:
        resp = await client.post("/api/v1/namespaces", json={"name": name, "dist_tag": name},
                                 headers=ADMIN)
        assert resp.status == 201, await resp.text()
    for i in range(5):
        resp = await client.post("/api/v1/images", json={"repository": f"p00/img{i}"},
                                 headers=ADMIN)
        assert resp.status == 201, await resp.text()
    pages, links = await walk(client, "/api/v1/namespaces?n=3", "namespaces")
    got = [ns["name"] for page in pages for ns in page]
    assert [p for p in got if p.startswith("p")] == names  # each once, in order
    assert all(len(page) == 3 for page in pages[:-1]) and 1 <= len(pages[-1]) <= 3
    assert all("n=3" in link and "last=" in link for link in links)
    # a filter is kept on every page
    pages, links = await walk(client, "/api/v1/images?namespace=p00&n=2", "images")
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [i["repository"] for p in pages for i in p] == [f"p00/img{i}" for i in range(5)]
    assert all("namespace=p00" in link for link in links)
    # a cursor whose item is gone still works: the page starts after its key
    resp = await client.get("/api/v1/images?namespace=p00&n=2&last=p00/img1x")
    assert [i["repository"] for i in (await resp.json())["images"]] == ["p00/img2",
                                                                       "p00/img3"]
    # the whole list fits in one page: no Link
    resp = await client.get("/api/v1/images?namespace=p00&n=5")
    assert resp.status == 200 and "Link" not in resp.headers


async def test_builds_page_newest_first_from_the_store(client: Client) -> None:
    resp = await client.post("/api/v1/namespaces", json={"name": "b25", "dist_tag": "b25"},
                             headers=ADMIN)
    assert resp.status == 201
    resp = await client.post("/api/v1/images", json={
        "repository": "b25/app", "source_url": "https://git.example/app.git",
        "source_branch": "b25"}, headers=ADMIN)
    assert resp.status == 201, await resp.text()
    ids = []
    for _ in range(5):
        resp = await client.post("/api/v1/builds", json={"repository": "b25/app"},
                                 headers=ADMIN)
        assert resp.status == 202, await resp.text()
        ids.append((await resp.json())["id"])
    pages, links = await walk(client, "/api/v1/builds?repository=b25/app&n=2", "builds")
    assert [[j["id"] for j in p] for p in pages] == [ids[4:2:-1], ids[2:0:-1], ids[:1]]
    assert links[0].endswith(f"last={ids[3]}") and "repository=b25%2Fapp" in links[0]
    # limit (from before pagination) still sizes the page when n is not given
    resp = await client.get("/api/v1/builds?repository=b25/app&limit=4")
    assert len((await resp.json())["builds"]) == 4 and "n=4" in resp.headers["Link"]


async def test_webhooks_page_after_their_item(client: Client) -> None:
    made = []
    for i in range(3):
        resp = await client.post("/api/v1/webhooks", json={"url": f"https://hooks.example/{i}"},
                                 headers=ADMIN)
        assert resp.status == 201, await resp.text()
        made.append((await resp.json())["id"])
    pages, _ = await walk(client, "/api/v1/webhooks?n=2", "webhooks", headers=ADMIN)
    assert [h["id"] for p in pages for h in p][-3:] == made
    resp = await client.get("/api/v1/webhooks?n=2&last=999999", headers=ADMIN)
    assert resp.status == 400
    assert (await resp.json())["errors"][0]["code"] == "INVALID"


@pytest.mark.parametrize("query", ["n=0", "n=1001", "n=x", "last=" + "x" * 600])
async def test_page_parameters_are_bounded(client: Client, query: str) -> None:
    for path in ("/api/v1/namespaces", "/api/v1/releases", "/api/v1/reviews"):
        resp = await client.get(f"{path}?{query}")
        assert resp.status == 400, (path, query)
        assert (await resp.json())["errors"][0]["code"] == "INVALID"


@pytest.mark.parametrize("path", ["/api/v1/reviews", "/api/v1/builds",
                                  "/api/v1/webhooks/deliveries"])
async def test_id_cursors_must_be_ids(client: Client, path: str) -> None:
    resp = await client.get(f"{path}?last=abc", headers=ADMIN)
    assert resp.status == 400
    assert "last" in (await resp.json())["errors"][0]["message"]


async def test_every_list_operation_is_paginated(client: Client) -> None:
    """A GET answering ``{"things": [...]}`` takes n and last and declares Link."""
    spec = await (await client.get("/api/v1/openapi.json")).json()
    schemas = spec["components"]["schemas"]
    bounded_otherwise = {"/api/v1/plan"}  # its count (1..100) bounds it
    lists = []
    for path, item in spec["paths"].items():
        get = item.get("get")
        if get is None or path in bounded_otherwise:
            continue
        answer = get["responses"]["200"]["content"].get("application/json", {})
        schema = answer.get("schema", {})
        schema = schemas[schema["$ref"].rsplit("/", 1)[1]] if "$ref" in schema else schema
        props = schema.get("properties", {})
        if len(props) == 1 and next(iter(props.values())).get("type") == "array":
            lists.append(path)
            names = {p["name"] for p in get.get("parameters", []) if p["in"] == "query"}
            assert {"n", "last"} <= names, path
            assert "Link" in get["responses"]["200"]["headers"], path
    assert len(lists) >= 8, lists


async def test_the_cli_client_follows_the_pages(client: Client,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(5):
        resp = await client.post("/api/v1/namespaces", json={"name": f"c{i}", "dist_tag": "c"},
                                 headers=ADMIN)
        assert resp.status == 201
    monkeypatch.setattr("strata.client.api.PAGE_SIZE", 2)
    async with aiohttp.ClientSession() as session:
        api = ApiClient(str(client.make_url("")), session, user="admin",
                        password=ADMIN_PASSWORD)
        got = [ns["name"] for ns in (await api.namespaces())["namespaces"]]
    assert [n for n in got if n.startswith("c")] == [f"c{i}" for i in range(5)]


async def test_tag_history_and_streams_page(client: Client,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """An image's tag history (all tags, one tag, one tag at a time) pages by event, oldest
    first, with its other fields on every page; its streams page by version."""
    from .test_answers import story

    await story(client)  # releases, an out-of-band release, a rollback: tag events
    image = "/api/v1/images/s25/x"
    everything = (await (await client.get(f"{image}/history?n=1000")).json())["events"]
    assert len(everything) >= 6
    pages, links = await walk(client, f"{image}/history?n=3", "events")
    assert [e for page in pages for e in page] == everything
    assert all(len(page) == 3 for page in pages[:-1]) and 1 <= len(pages[-1]) <= 3
    assert len(pages) >= 2 and all("n=3" in link and "last=" in link for link in links)
    one_tag = [e for e in everything if e["tag"] == "129"]
    assert len(one_tag) >= 3
    for path in (f"{image}/history?tag=129&n=2", f"{image}/tags/129/history?n=2"):
        pages, links = await walk(client, path, "events")
        assert [e for page in pages for e in page] == one_tag, path
    # with at: what the tag pointed to then, the same on every page
    at = one_tag[1]["at_epoch"]
    whole = await (await client.get(f"{image}/tags/129/history?at={at}&n=1000")).json()
    assert whole["since"] == one_tag[1] and whole["events"] == one_tag[:2]
    next_path: str | None = f"{image}/tags/129/history?at={at}&n=1"
    seen = []
    while next_path:
        resp = await client.get(next_path)
        body = await resp.json()
        assert {k: v for k, v in body.items() if k != "events"} == {
            k: v for k, v in whole.items() if k != "events"}
        seen += body["events"]
        link = resp.headers.get("Link")
        next_path = NEXT.match(link).group(1) if link else None  # type: ignore[union-attr]
        assert next_path is None or f"at={at}" in next_path
    assert seen == whole["events"]
    # streams, by version
    pages, links = await walk(client, f"{image}/streams?n=1", "streams")
    assert [[s["version"] for s in page] for page in pages] == [["129"], ["130"]]
    # a cursor that is no event of the image, or no id
    for last in ("999999", "abc"):
        resp = await client.get(f"{image}/history?last={last}")
        assert resp.status == 400, last
        assert (await resp.json())["errors"][0]["code"] == "INVALID"
    # the CLI's client follows the pages and keeps the other fields
    monkeypatch.setattr("strata.client.api.PAGE_SIZE", 1)
    async with aiohttp.ClientSession() as session:
        api = ApiClient(str(client.make_url("")), session, user="admin",
                        password=ADMIN_PASSWORD)
        history = await api.history("s25/x:129")
        assert history["events"] == one_tag and history["repository"] == "s25/x"
        then = await api.history("s25/x:129", at=str(at))
        assert then == whole
        streams = await api.streams("s25/x")
        assert [s["version"] for s in streams["streams"]] == ["129", "130"]
        assert streams["repository"] == "s25/x"
