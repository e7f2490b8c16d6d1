"""Search through /api/v1 and /v1 in-process: the index follows every path that changes the
data (image add and edit, candidate registration with labels and help, withdrawal, release,
EOL, base import's registration path), ranking and filters, packages with their release,
pages, and a clear 400 for every bad input."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp import web
from aiohttp.test_utils import TestClient

from strata.registry.service import Registry
from strata.release.engine import ReleaseEngine
from strata.release.webhooks import RetryPolicy, WebhookSender
from strata.server.api import ReleaseApi
from strata.server.app import create_app

from .test_rebuild_api import error, ok, publish_oob, push, register

Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def client(aiohttp_client: Callable[..., Awaitable[Client]], registry: Registry,
                 engine: ReleaseEngine, db: sa.Engine) -> Client:
    sender = WebhookSender(db, policy=RetryPolicy(base_delay=0.05, timeout=5),
                           security=engine.webhook_security)
    api = ReleaseApi(engine, sender, scheduler_interval=0, webhook_interval=0)
    return await aiohttp_client(create_app(registry, housekeeping_interval=0, release=api))


async def found(client: Client, **params: str) -> list[str]:
    body = await ok(await client.get("/api/v1/search", params=params))
    return [hit["repository"] for hit in body["results"]]


def packages(*items: tuple[str, str]) -> dict[str, Any]:
    return {"packages": [{"name": n, "version": v, "arch": "x86_64"} for n, v in items]}


async def world(client: Client) -> dict[str, str]:
    await ok(await client.post("/api/v1/namespaces", json={
        "name": "f25", "dist_tag": "f25docker", "anchor": "2025-06-10"}), 201)
    await ok(await client.post("/api/v1/namespaces", json={
        "name": "f26", "dist_tag": "f26docker", "anchor": "2025-06-10"}), 201)
    for repo, summary in (("f25/cockpit", "Web console for Linux servers"),
                          ("f25/cockpit-ws", "The cockpit web service"),
                          ("f26/nginx", "HTTP server and reverse proxy")):
        await ok(await client.post("/api/v1/images", json={
            "repository": repo, "summary": summary}), 201)
    digests = {}
    for repo, version, pkgs in (
            ("f25/cockpit", "330", packages(("openssl", "3.0.8-1.fc25"), ("glibc", "2.41"))),
            ("f25/cockpit-ws", "330", packages(("openssl", "3.0.9-1.fc25"))),
            ("f26/nginx", "1.27", packages(("openssl", "3.0.8-2.fc26")))):
        digest = await push(client, repo, version, "1.f25docker" if "f25" in repo
                            else "1.f26docker")
        await ok(await register(client, repo, digest, {
            **pkgs, "help": f"# {repo}\n\nUsage: mount your TLS certificates in /certs."}),
            201)
        digests[repo] = digest
    return digests


async def test_search_follows_every_path(client: Client) -> None:
    digests = await world(client)
    # image add (summary), name first, then a summary that mentions the word
    assert await found(client, q="cockpit") == ["f25/cockpit", "f25/cockpit-ws"]
    # candidate registration: its help text and its labels (read from the image's config)
    assert sorted(await found(client, q="certificates", n="10")) == [
        "f25/cockpit", "f25/cockpit-ws", "f26/nginx"]
    assert await found(client, q="version=1.27") == ["f26/nginx"]
    # filters
    assert await found(client, q="certificates", namespace="f26") == ["f26/nginx"]
    assert await found(client, q="cockpit", status="retired") == []
    # image set (PATCH): summary and status
    await ok(await client.patch("/api/v1/images/f25/cockpit", json={
        "summary": "Administration UI", "status": "retired"}))
    assert await found(client, q="administration", status="retired") == ["f25/cockpit"]
    assert await found(client, q="console") == []
    # release: the NVR the result names
    await publish_oob(client, f"f26/nginx@{digests['f26/nginx']}")
    body = await ok(await client.get("/api/v1/search", params={"q": "nginx"}))
    assert body["results"] == [{
        "repository": "f26/nginx", "namespace": "f26", "name": "nginx", "status": "active",
        "eol": False, "summary": "HTTP server and reverse proxy",
        "nvr": "nginx-1.27-1.f26docker"}]
    # EOL
    await ok(await client.post("/api/v1/images/f26/nginx/streams/1.27/eol"))
    assert await found(client, q="nginx", eol="true") == ["f26/nginx"]
    assert await found(client, q="nginx", eol="false") == []
    # withdrawal: the image has no live build, so no build texts
    await ok(await client.post("/api/v1/candidates/withdraw", json={
        "reference": f"f25/cockpit-ws@{digests['f25/cockpit-ws']}", "reason": "broken"}))
    assert sorted(await found(client, q="certificates", n="10")) == [
        "f25/cockpit", "f26/nginx"]

    # packages: with the release each build was in (or none yet)
    body = await ok(await client.get("/api/v1/search/packages",
                                     params={"name": "openssl=3.0.8"}))
    assert [(h["repository"], h["nvr"], h["status"], h["release"], h["package"]["version"])
            for h in body["results"]] == [
        ("f25/cockpit", "cockpit-330-1.f25docker", "candidate", None, "3.0.8-1.fc25"),
        ("f26/nginx", "nginx-1.27-1.f26docker", "released",
         (await ok(await client.get("/api/v1/releases")))["releases"][0]["name"],
         "3.0.8-2.fc26")]
    body = await ok(await client.get("/api/v1/search/packages", params={
        "name": "openssl", "q": "nginx"}))
    assert [h["repository"] for h in body["results"]] == ["f26/nginx"]
    body = await ok(await client.get("/api/v1/search/packages", params={
        "name": "openssl", "namespace": "f25"}))
    assert [h["repository"] for h in body["results"]] == ["f25/cockpit"]  # withdrawn: gone


async def test_pages_follow_the_cursor(client: Client) -> None:
    await world(client)
    seen: list[str] = []
    params = {"q": "certificates", "n": "1"}
    for _ in range(5):
        resp = await client.get("/api/v1/search", params=params)
        body = await ok(resp)
        seen += [hit["repository"] for hit in body["results"]]
        if body["next"] is None:
            assert "Link" not in resp.headers
            break
        assert resp.headers["Link"].endswith('>; rel="next"')
        params = {**params, "last": body["next"]}
    assert sorted(seen) == ["f25/cockpit", "f25/cockpit-ws", "f26/nginx"]  # each once
    seen = []
    params = {"name": "openssl", "n": "2"}
    while True:
        body = await ok(await client.get("/api/v1/search/packages", params=params))
        seen += [hit["repository"] for hit in body["results"]]
        if body["next"] is None:
            break
        params = {**params, "last": body["next"]}
    assert seen == ["f25/cockpit", "f25/cockpit-ws", "f26/nginx"]


async def test_docker_v1_search(client: Client) -> None:
    await world(client)
    body = await ok(await client.get("/v1/search", params={"q": "cockpit", "n": "25"}))
    assert body == {"num_results": 2, "query": "cockpit", "results": [
        {"name": "f25/cockpit", "description": "Web console for Linux servers",
         "star_count": 0, "is_official": False, "is_automated": False},
        {"name": "f25/cockpit-ws", "description": "The cockpit web service",
         "star_count": 0, "is_official": False, "is_automated": False}]}
    body = await ok(await client.get("/v1/search", params={"q": "cockpit", "n": "1000"}))
    assert body["num_results"] == 2  # n above 100 is served as 100
    await error(await client.get("/v1/search", params={"q": "x", "n": "ten"}), 400, "INVALID")


@pytest.mark.parametrize(("path", "params", "says"), [
    ("/api/v1/search", {"q": "x" * 300}, "longer than"),
    ("/api/v1/search", {"q": "!!!"}, "no word"),
    ("/api/v1/search", {"q": " ".join("abcdefghij")}, "at most 8 words"),
    ("/api/v1/search", {"q": "a" * 65}, "at most 64"),
    ("/api/v1/search", {"n": "0"}, "n must be"),
    ("/api/v1/search", {"n": "101"}, "n must be"),
    ("/api/v1/search", {"n": "9" * 40}, "n must be"),
    ("/api/v1/search", {"status": "gone"}, "status must be"),
    ("/api/v1/search", {"eol": "maybe"}, "eol must be"),
    ("/api/v1/search", {"namespace": "F25/x"}, "not a namespace"),
    ("/api/v1/search", {"last": "%%%"}, "cursor"),
    ("/api/v1/search", {"last": "eyJvIjotMX0"}, "cursor"),  # {"o":-1}
    ("/api/v1/search", {"q": "a\x01b"}, "control"),
    ("/api/v1/search/packages", {}, "missing query parameter"),
    ("/api/v1/search/packages", {"name": "openssl="}, "NAME=VERSION"),
    ("/api/v1/search/packages", {"name": "x" * 300}, "longer than"),
    ("/api/v1/search/packages", {"name": "x", "last": "WzFd"}, "cursor"),  # [1]
])
async def test_bad_input_is_a_clear_400(client: Client, path: str, params: dict[str, str],
                                        says: str) -> None:
    err = await error(await client.get(path, params=params), 400, "INVALID")
    # the catalog's own words, or the declared bounds' check naming the parameter
    named = f"query parameter {next(iter(params or {'name': ''}))!r}"
    assert says in err["message"] or err["message"].startswith(named), err["message"]
