"""/api/v1 in-process (pytest-aiohttp) and the /v2/ write policy on managed repositories."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from strata.client.registry import ClientError, RegistryClient
from strata.oci import mediatypes as mt
from strata.registry.service import Registry
from strata.release.engine import ReleaseEngine
from strata.release.webhooks import RetryPolicy
from strata.server.api import ReleaseApi
from strata.server.app import create_app
from support.release import webhook_sender

from .conftest import Clock
from .helpers import make_image

Client = TestClient[web.Request, web.Application]
AUTH = {"Authorization": aiohttp.encode_basic_auth("rel-eng", "x")}


@pytest.fixture
def make_client(aiohttp_client: Callable[..., Awaitable[Client]], registry: Registry,
                engine: ReleaseEngine, db: sa.Engine) -> Callable[..., Awaitable[Client]]:
    async def make(**kw: Any) -> Client:
        sender = webhook_sender(db, policy=RetryPolicy(base_delay=0.05, timeout=5),
                               security=engine.webhook_security)
        api = ReleaseApi(engine, sender, **{"scheduler_interval": 0, "webhook_interval": 0,
                                            **kw})
        return await aiohttp_client(create_app(registry, housekeeping_interval=0, release=api))
    return make


@pytest.fixture
async def client(make_client: Callable[..., Awaitable[Client]]) -> Client:
    return await make_client()


def oci(client: Client) -> RegistryClient:
    return RegistryClient(str(client.make_url("")), client.session)


async def push(client: Client, repo: str, version: str, release: str, *, salt: str = "",
               tag: str | None = None) -> str:
    image = make_image(repo.split("/")[1], version, release, salt=salt)
    return await oci(client).push_image(repo, tag, [image.layer], image.config)


async def ok(resp: aiohttp.ClientResponse, status: int = 200) -> Any:
    body = await resp.read()
    assert resp.status == status, body[:1000]
    return json.loads(body)


async def error(resp: aiohttp.ClientResponse, status: int, code: str) -> dict[str, Any]:
    body = await resp.read()
    assert resp.status == status, body[:1000]
    err: dict[str, Any] = json.loads(body)["errors"][0]
    assert err["code"] == code, err
    return err


async def setup(client: Client) -> None:
    """Namespace f25 and its image f25/x, registered directly (issue 14: candidates only for
    active images)."""
    await ok(await client.post("/api/v1/namespaces", json={
        "name": "f25", "dist_tag": "f25docker", "anchor": "2025-06-10"}, headers=AUTH), 201)
    await ok(await client.post("/api/v1/images", json={
        "repository": "f25/x", "reason": "test fixture"}, headers=AUTH), 201)


async def add(client: Client, repo: str, digest: str) -> Any:
    return await ok(await client.post("/api/v1/candidates", json={
        "reference": f"{repo}@{digest}"}, headers=AUTH), 201)


async def test_namespaces_images_and_errors(client: Client) -> None:
    await setup(client)
    await error(await client.post("/api/v1/namespaces", json={
        "name": "f25", "dist_tag": "f25docker"}), 409, "CONFLICT")
    await error(await client.post("/api/v1/namespaces", data=b"{nope"), 400, "INVALID")
    await error(await client.post("/api/v1/namespaces", json={"dist_tag": "x"}), 400, "INVALID")
    listed = await ok(await client.get("/api/v1/namespaces"))
    assert [n["name"] for n in listed["namespaces"]] == ["f25"]
    assert (await ok(await client.get("/api/v1/namespaces/f25")))["interval_days"] == 14
    image = await ok(await client.post("/api/v1/images", json={
        "repository": "f25/cockpit", "maintainers": ["alice"],
        "source_url": "https://src.example/cockpit.git", "source_branch": "f25"}), 201)
    assert image["maintainers"] == ["alice"] and image["status"] == "active"
    await error(await client.post("/api/v1/images", json={"repository": "f26/x"}), 404,
                "NOT_FOUND")
    await error(await client.get("/api/v1/images/f25/nope"), 404, "NOT_FOUND")
    await error(await client.get("/api/v1/releases/nope"), 404, "NOT_FOUND")
    await error(await client.get("/api/v1/nothing-here"), 404, "NOT_FOUND")
    await error(await client.delete("/api/v1/plan"), 405, "UNSUPPORTED")
    await error(await client.post("/api/v1/candidates", json={"reference": "f25/x:1"}), 400,
                "INVALID")


async def test_candidate_plan_publish_and_notes(client: Client) -> None:
    await setup(client)
    d129 = await push(client, "f25/x", "129", "1.f25docker")
    d130 = await push(client, "f25/x", "130", "1.f25docker")
    build = await add(client, "f25/x", d130)
    assert build["nvr"] == "x-130-1.f25docker" and build["created_by"] == "rel-eng"
    await add(client, "f25/x", d129)
    listed = await ok(await client.get("/api/v1/candidates", params={"namespace": "f25"}))
    assert len(listed["candidates"]) == 2
    [plan] = (await ok(await client.get("/api/v1/plan", params={"count": "2"})))["plans"]
    assert [n["date"] for n in plan["next"]] == ["2025-06-10", "2025-06-24"]
    assert {m["tag"] for m in plan["images"][0]["moves"]} == {
        "129-1.f25docker", "130-1.f25docker", "129", "130", "latest"}
    release = await ok(await client.post("/api/v1/releases/publish", json={}, headers=AUTH), 201)
    assert release["name"] == "f25-2025-06-10" and release["actor"] == "rel-eng"
    assert release["notes"]["images"][0]["new_nvr"] == "x-130-1.f25docker"
    assert await oci(client).head_manifest("f25/x", "latest") == d130
    assert await oci(client).head_manifest("f25/x", "129") == d129
    resp = await client.get(f"/api/v1/releases/{release['name']}/notes.md")
    assert resp.content_type == "text/markdown"
    assert "## f25/x" in await resp.text()
    notes = await ok(await client.get(f"/api/v1/releases/{release['name']}/notes.json"))
    assert notes["release"] == release["name"]
    listed = await ok(await client.get("/api/v1/releases"))
    assert [r["name"] for r in listed["releases"]] == [release["name"]]
    await error(await client.post("/api/v1/releases/publish", json={"name": release["name"]}),
                409, "CONFLICT")
    image = await ok(await client.get("/api/v1/images/f25/x"))
    assert {t["tag"]: t["nvr"] for t in image["tags"]}["latest"] == "x-130-1.f25docker"


async def test_v2_writes_no_stream_tag_in_a_managed_repository(client: Client) -> None:
    """Issue 11: every stream tag (NVR, Name-Version, latest) of a release-managed repository
    comes from a release; /v2/ can neither create, move nor delete one."""
    await setup(client)
    d130 = await push(client, "f25/x", "130", "1.f25docker")
    await add(client, "f25/x", d130)
    await ok(await client.post("/api/v1/releases/publish", json={}), 201)
    registry = oci(client)
    evil = make_image("x", "130", "1.f25docker", salt="evil")
    for tag in ("130-1.f25docker", "131-1.f25docker", "latest", "130", "131"):
        with pytest.raises(ClientError) as err:
            await registry.push_image("f25/x", tag, [evil.layer], evil.config)
        assert err.value.status == 403 and err.value.code == "DENIED"
        assert "rule stream-tags-release-only" in str(err.value)
        assert "strata candidate add f25/x@sha256:" in str(err.value)
    for ref in ("130-1.f25docker", "latest", "130", d130):
        with pytest.raises(ClientError) as err:
            await registry.delete_manifest("f25/x", ref)
        assert err.value.status == 403 and err.value.code == "DENIED"
        assert "rule stream-tags-release-only" in str(err.value)
    assert await registry.head_manifest("f25/x", "130-1.f25docker") == d130
    assert await registry.head_manifest("f25/x", "131-1.f25docker") is None
    # the same digest again writes nothing and is fine (clients re-push); cosign attachment
    # tags too -- but signatures are the release's (issue 16)
    manifest = (await registry.get_manifest("f25/x", d130)).content
    assert await registry.put_manifest("f25/x", "130-1.f25docker", manifest,
                                       mt.OCI_MANIFEST) == d130
    att = "sha256-" + d130.split(":")[1] + ".att"
    await registry.push_image("f25/x", att, [b"sig1"], b"{}", artifact_type="a/b")
    await registry.push_image("f25/x", att, [b"sig2"], b"{}", artifact_type="a/b")
    await registry.delete_manifest("f25/x", att)
    with pytest.raises(ClientError) as err:
        await registry.push_image("f25/x", att.replace(".att", ".sig"), [b"sig1"], b"{}",
                                  artifact_type="a/b")
    assert err.value.status == 403 and "rule signature-release-only" in str(err.value)
    # a push by digest is how a build arrives
    assert await registry.push_image("f25/x", None, [evil.layer], evil.config)
    # ?tag= on a push by digest is a tag write too
    body = (await registry.get_manifest("f25/x", d130)).content
    resp = await client.put(f"/v2/f25/x/manifests/{d130}", params={"tag": "132"}, data=body,
                            headers={"Content-Type": mt.OCI_MANIFEST})
    assert (await error(resp, 403, "DENIED"))["detail"]["rule"] == "stream-tags-release-only"
    image = await ok(await client.get("/api/v1/images/f25/x"))
    assert {t["tag"] for t in image["tags"]} == {"130-1.f25docker", "130", "latest"}


async def test_a_registered_namespace_protects_names_not_registered_yet(client: Client) -> None:
    """``f25/newthing:131-1.f25docker`` cannot be minted before the image is registered;
    repositories outside every namespace stay scratch space."""
    await setup(client)
    registry = oci(client)
    image = make_image("newthing", "131", "1.f25docker")
    for repo in ("f25/newthing", "f25"):
        with pytest.raises(ClientError) as err:
            await registry.push_image(repo, "131-1.f25docker", [image.layer], image.config)
        assert err.value.status == 403 and "stream-tags-release-only" in str(err.value)
    digest = await registry.push_image("f25/newthing", None, [image.layer], image.config)
    refused = await error(await client.post("/api/v1/candidates", json={
        "reference": f"f25/newthing@{digest}"}, headers=AUTH), 403, "DENIED")
    assert "strata image submit f25/newthing" in refused["message"]
    await ok(await client.post("/api/v1/images", json={"repository": "f25/newthing"},
                               headers=AUTH), 201)
    build = await add(client, "f25/newthing", digest)
    assert build["status"] == "candidate" and build["warnings"] == []
    assert await registry.tags("f25/newthing") == []
    await registry.push_image("demo/busybox", "latest", [image.layer], image.config)
    await registry.push_image("demo/busybox", "1-1", [image.layer], image.config)
    await registry.delete_manifest("demo/busybox", "latest")
    await registry.delete_manifest("demo/busybox", digest)


async def _layer_of(client: Client, repo: str, digest: str) -> str:
    manifest = json.loads((await oci(client).get_manifest(repo, digest)).content)
    return str(manifest["layers"][0]["digest"])


async def test_content_of_released_and_pending_builds_cannot_be_deleted(client: Client) -> None:
    await setup(client)
    registry = oci(client)
    released = await push(client, "f25/x", "1.0", "1.f25docker")
    await add(client, "f25/x", released)
    await ok(await client.post("/api/v1/releases/publish", json={}), 201)
    pending = await push(client, "f25/x", "1.1", "1.f25docker")
    await add(client, "f25/x", pending)
    for digest in (released, pending):
        layer = await _layer_of(client, "f25/x", digest)
        err = await error(await client.delete(f"/v2/f25/x/blobs/{layer}"), 403, "DENIED")
        assert err["detail"] == {"rule": "build-protected", "repository": "f25/x",
                                 "blob": layer}
        assert await registry.get_blob("f25/x", layer)
    err = await error(await client.delete(f"/v2/f25/x/manifests/{pending}"), 403, "DENIED")
    assert err["detail"]["rule"] == "build-protected"
    assert "strata candidate withdraw f25/x@" in err["message"]
    assert await registry.head_manifest("f25/x", pending) == pending
    # a pending index protects its child manifests and their blobs
    child = await push(client, "f25/x", "1.2", "1.f25docker")
    child_size = len((await registry.get_manifest("f25/x", child)).content)
    index = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [
        {"mediaType": mt.OCI_MANIFEST, "digest": child, "size": child_size,
         "platform": {"architecture": "amd64", "os": "linux"}}]}).encode()
    index_digest = "sha256:" + hashlib.sha256(index).hexdigest()
    await registry.put_manifest("f25/x", index_digest, index, mt.OCI_INDEX)
    assert (await add(client, "f25/x", index_digest))["nvr"] == "x-1.2-1.f25docker"
    err = await error(await client.delete(f"/v2/f25/x/manifests/{child}"), 403, "DENIED")
    assert err["detail"]["rule"] == "build-protected" and index_digest in err["message"]
    layer = await _layer_of(client, "f25/x", child)
    await error(await client.delete(f"/v2/f25/x/blobs/{layer}"), 403, "DENIED")
    # unprotected content of the same repository still goes
    other = await registry.push_image("f25/x", None, [b"scratch layer"], b"{}")
    await registry.delete_manifest("f25/x", other)
    await registry.delete_blob("f25/x", "sha256:" + hashlib.sha256(b"scratch layer").hexdigest())


async def test_oob_rollback_eol_and_history(client: Client, clock: Clock) -> None:
    await setup(client)
    d129 = await push(client, "f25/x", "129", "1.f25docker")
    d130 = await push(client, "f25/x", "130", "1.f25docker")
    await add(client, "f25/x", d129)
    await add(client, "f25/x", d130)
    await ok(await client.post("/api/v1/releases/publish", json={"namespace": "f25"}), 201)
    t_first = clock.advance(days=1)
    clock.advance(days=1)
    d129_2 = await push(client, "f25/x", "129", "2.f25docker")
    oob = await ok(await client.post("/api/v1/releases/oob", json={
        "references": [f"f25/x@{d129_2}"], "advisories": ["FEDORA-2025-9"],
        "reason": "CVE-2025-9999"}, headers=AUTH), 201)
    assert oob["kind"] == "oob" and oob["advisories"] == ["FEDORA-2025-9"]
    assert await oci(client).head_manifest("f25/x", "129") == d129_2
    assert await oci(client).head_manifest("f25/x", "latest") == d130
    await error(await client.post("/api/v1/releases/oob", json={
        "references": [f"f25/x@{d129_2}"], "reason": "x"}), 400, "INVALID")
    clock.advance(days=1)
    event = await ok(await client.post("/api/v1/rollback", json={
        "reference": "f25/x:129", "to": "129-1.f25docker", "reason": "regression"}, headers=AUTH))
    assert event["new_digest"] == d129 and event["actor"] == "rel-eng"
    await error(await client.post("/api/v1/rollback", json={
        "reference": "f25/x:129", "to": "129-2.f25docker", "reason": "x"}), 409, "CONFLICT")
    stream = await ok(await client.post("/api/v1/images/f25/x/streams/129/eol", headers=AUTH))
    assert stream["eol"] and stream["eol_by"] == "rel-eng"
    streams = await ok(await client.get("/api/v1/images/f25/x/streams"))
    assert {s["version"]: s["eol"] for s in streams["streams"]} == {"129": True, "130": False}
    then = await ok(await client.get("/api/v1/images/f25/x/tags/129/history",
                                     params={"at": str(t_first)}))
    assert then["digest"] == d129 and then["nvr"] == "x-129-1.f25docker"
    iso = dt.datetime.fromtimestamp(t_first + 86400 + 1, dt.UTC).isoformat()
    assert iso.endswith("+00:00")
    later = await ok(await client.get("/api/v1/images/f25/x/tags/129/history",
                                      params={"at": iso}))
    assert later["digest"] == d129_2
    now = await ok(await client.get("/api/v1/images/f25/x/tags/129/history"))
    assert [e["new_digest"] for e in now["events"]] == [d129, d129_2, d129]
    whole = await ok(await client.get("/api/v1/images/f25/x/history"))
    assert len(whole["events"]) == 8
    await error(await client.get("/api/v1/images/f25/x/history", params={"at": "yesterday"}),
                400, "INVALID")


async def test_v2_pushes_are_recorded_in_tag_history(client: Client) -> None:
    image = make_image("fedora", "25", "1")
    digest = await oci(client).push_image("base/fedora", "latest", [image.layer], image.config)
    await oci(client).delete_manifest("base/fedora", "latest")
    history = await ok(await client.get("/api/v1/images/base/fedora/history"))
    assert [(e["old_digest"], e["new_digest"], e["actor"]) for e in history["events"]] == [
        (None, digest, "registry"), (digest, None, "registry")]


async def test_server_publishes_scheduled_release_when_due(
        make_client: Callable[..., Awaitable[Client]], clock: Clock) -> None:
    client = await make_client(scheduler_interval=0.05)
    await setup(client)
    digest = await push(client, "f25/x", "130", "1.f25docker")
    await add(client, "f25/x", digest)
    await asyncio.sleep(0.2)
    assert (await ok(await client.get("/api/v1/releases")))["releases"] == []
    clock.now = dt.datetime(2025, 6, 10, 0, 0, 5, tzinfo=dt.UTC).timestamp()
    for _ in range(100):
        releases = (await ok(await client.get("/api/v1/releases")))["releases"]
        if releases:
            break
        await asyncio.sleep(0.05)
    assert [(r["name"], r["actor"]) for r in releases] == [("f25-2025-06-10", "scheduler")]
    assert await oci(client).head_manifest("f25/x", "latest") == digest


async def test_webhooks_are_retried_until_delivered(
        make_client: Callable[..., Awaitable[Client]],
        aiohttp_server: Callable[..., Awaitable[TestServer]]) -> None:
    received: list[tuple[dict[str, str], bytes]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append((dict(request.headers), await request.read()))
        return web.Response(status=503 if len(received) == 1 else 204)

    receiver_app = web.Application()
    receiver_app.router.add_post("/hook", hook)
    receiver = await aiohttp_server(receiver_app, host="127.0.0.1")
    client = await make_client(webhook_interval=0.05)
    await setup(client)
    await ok(await client.post("/api/v1/webhooks", json={
        "url": str(receiver.make_url("/hook")), "events": ["release.published"],
        "secret": "s3cret"}), 201)
    await error(await client.post("/api/v1/webhooks", json={"url": "ftp://x"}), 400, "INVALID")
    digest = await push(client, "f25/x", "130", "1.f25docker")
    await add(client, "f25/x", digest)
    await ok(await client.post("/api/v1/releases/publish", json={}), 201)
    for _ in range(200):
        deliveries = (await ok(await client.get("/api/v1/webhooks/deliveries")))["deliveries"]
        if deliveries and deliveries[0]["status"] == "delivered":
            break
        await asyncio.sleep(0.05)
    [delivery] = deliveries
    assert delivery["status"] == "delivered" and delivery["attempts"] == 2
    assert len(received) == 2 and received[0][1] == received[1][1]
    headers, body = received[1]
    assert headers["X-Strata-Event"] == "release.published"
    mac = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert headers["X-Strata-Signature"] == f"sha256={mac}"
    payload = json.loads(body)
    assert payload["event"] == "release.published"
    assert payload["data"]["release"] == "f25-2025-06-10"
    assert payload["data"]["images"][0]["new_nvr"] == "x-130-1.f25docker"
