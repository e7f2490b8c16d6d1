"""The rebuild loop through /api/v1 in-process: candidates carry what they were built from,
an unchanged rebuild is refused (409, detail.unchanged), a base release queues exactly the
dependant rebuilds and the plan lists them, ``images?stale=1``, ``rebuild_days_before`` on
namespaces."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from aiohttp import web
from aiohttp.test_utils import TestClient

from strata.cli.release_cmds import _plan_text
from strata.client.registry import RegistryClient
from strata.registry.service import Registry
from strata.release.engine import ReleaseEngine
from strata.release.webhooks import RetryPolicy, WebhookSender
from strata.server.api import ReleaseApi
from strata.server.app import create_app

from .helpers import make_image

Client = TestClient[web.Request, web.Application]
COMMIT = "c0ffee" + "0" * 34


@pytest.fixture
async def client(aiohttp_client: Callable[..., Awaitable[Client]], registry: Registry,
                 engine: ReleaseEngine, db: sa.Engine) -> Client:
    sender = WebhookSender(db, policy=RetryPolicy(base_delay=0.05, timeout=5),
                           security=engine.webhook_security)
    api = ReleaseApi(engine, sender, scheduler_interval=0, webhook_interval=0)
    return await aiohttp_client(create_app(registry, housekeeping_interval=0, release=api))


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


async def push(client: Client, repo: str, version: str, release: str, salt: str = "") -> str:
    name = repo.rsplit("/", 1)[-1]
    image = make_image(name, version, release, salt=salt)
    oci = RegistryClient(str(client.make_url("")), client.session)
    return await oci.push_image(repo, None, [image.layer], image.config)


def built_on(base_digest: str, *, commit: str = COMMIT, tag: str = "25",
             packages: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {"source": {"url": "https://src.example/x.git", "commit": commit},
            "base": {"repository": "f25", "tag": tag, "digest": base_digest},
            "packages": packages or [{"name": "glibc", "version": "2.41-1",
                                      "arch": "x86_64"}]}


async def register(client: Client, repo: str, digest: str, inputs: dict[str, Any] | None = None,
                   **extra: Any) -> aiohttp.ClientResponse:
    return await client.post("/api/v1/candidates", json={
        "reference": f"{repo}@{digest}", **(inputs or {}), **extra})


async def publish_oob(client: Client, *refs: str) -> Any:
    return await ok(await client.post("/api/v1/releases/oob", json={
        "references": list(refs), "advisories": ["FEDORA-1"], "reason": "r"}), 201)


async def world(client: Client) -> dict[str, str]:
    await ok(await client.post("/api/v1/namespaces", json={
        "name": "f25", "dist_tag": "f25docker", "anchor": "2025-06-10",
        "rebuild_days_before": 2}), 201)
    await ok(await client.post("/api/v1/images", json={"repository": "f25",
                                                       "namespace": "f25"}), 201)
    for name in ("cockpit", "toolchain", "other"):
        await ok(await client.post("/api/v1/images", json={
            "repository": f"f25/{name}", "source_url": f"https://src.example/{name}.git",
            "source_branch": "f25"}), 201)
    base1 = await push(client, "f25", "25", "1.f25docker")
    await ok(await register(client, "f25", base1), 201)
    await publish_oob(client, f"f25@{base1}")
    digests = {"base1": base1}
    for name, tag in (("cockpit", "25"), ("toolchain", "latest"), ("other", "24")):
        digest = await push(client, f"f25/{name}", "1", "1.f25docker")
        answer = await ok(await register(client, f"f25/{name}", digest, built_on(
            base1 if tag != "24" else "sha256:" + "2" * 64, tag=tag)), 201)
        assert answer["inputs"]["base"]["tag"] == tag
        assert answer["inputs"]["source"]["commit"] == COMMIT
        digests[name] = digest
    await ok(await client.post("/api/v1/releases/publish", json={"namespace": "f25"}), 201)
    return digests


async def test_a_base_release_queues_the_dependants_and_the_plan_lists_them(
        client: Client) -> None:
    digests = await world(client)
    assert (await ok(await client.get("/api/v1/images", params={"stale": "1"})))["images"] == []
    [plan] = (await ok(await client.get("/api/v1/plan")))["plans"]
    assert plan["rebuilds"] == []
    base2 = await push(client, "f25", "25", "2.f25docker")
    await ok(await register(client, "f25", base2), 201)
    release = await publish_oob(client, f"f25@{base2}")
    [plan] = (await ok(await client.get("/api/v1/plan")))["plans"]
    # cockpit (f25:25) and toolchain (f25:latest) moved; other (f25:24) did not
    assert [(r["repository"], r["state"]) for r in plan["rebuilds"]] == [
        ("f25/cockpit", "queued"), ("f25/toolchain", "queued")]
    assert f"moved in {release['name']}" in plan["rebuilds"][0]["reason"]
    assert "f25-25-1.f25docker -> f25-25-2.f25docker" in plan["rebuilds"][0]["reason"]
    text = _plan_text({"plans": [plan]})  # what `strata release plan` prints
    assert "  pending rebuilds (their builds join the release once registered):" in text
    assert f"    f25/cockpit (job {plan['rebuilds'][0]['id']}, queued): base f25:25 moved" in text
    stale = (await ok(await client.get("/api/v1/images",
                                       params={"stale": "1", "namespace": "f25"})))["images"]
    assert [(s["repository"], s["base"]["built_on"], s["base"]["now"], s["stale"])
            for s in stale] == [("f25/cockpit", digests["base1"], base2, True),
                                ("f25/toolchain", digests["base1"], base2, True)]
    assert stale[0]["base"]["now_nvr"] == "f25-25-2.f25docker"

    # the rebuild of cockpit: unchanged against its release -> refused, nothing registered
    again = await push(client, "f25/cockpit", "1", "2.f25docker")
    err = await error(await register(client, "f25/cockpit", again, built_on(digests["base1"]),
                                     if_changed=True), 409, "CONFLICT")
    assert err["detail"] == {"unchanged": True, "same_as": {
        "nvr": "cockpit-1-1.f25docker", "digest": digests["cockpit"], "status": "released"}}
    assert "unchanged" in err["message"]
    pending = (await ok(await client.get("/api/v1/candidates",
                                         params={"repository": "f25/cockpit"})))["candidates"]
    assert pending == []
    # the rebuild on the new base, glibc updated: registered with the next release number
    rebuilt = await ok(await register(client, "f25/cockpit", again, built_on(
        base2, packages=[{"name": "glibc", "version": "2.41-2", "arch": "x86_64"}]),
        if_changed=True), 201)
    assert rebuilt["nvr"] == "cockpit-1-2.f25docker"
    stale = (await ok(await client.get("/api/v1/images", params={"stale": "1"})))["images"]
    assert [s["repository"] for s in stale] == ["f25/toolchain"]
    published = await ok(await client.post("/api/v1/releases/publish",
                                           json={"namespace": "f25"}), 201)
    [image] = published["notes"]["images"]
    assert image["rebuild"]["base"]["old_nvr"] == "f25-25-1.f25docker"
    assert image["rebuild"]["base"]["new_nvr"] == "f25-25-2.f25docker"
    assert image["rebuild"]["packages"] == [
        {"name": "glibc", "arch": "x86_64", "old": "2.41-1", "new": "2.41-2"}]
    markdown = await (await client.get(
        f"/api/v1/releases/{published['name']}/notes.md")).text()
    assert "glibc 2.41-1 → 2.41-2" in markdown
    assert "Base `f25:25`: f25-25-1.f25docker → f25-25-2.f25docker" in markdown


async def test_inputs_are_checked_and_namespace_settings_change(client: Client) -> None:
    await world(client)
    digest = await push(client, "f25/cockpit", "1", "9.f25docker")
    for bad in ({"source": {"commit": "; rm -rf /"}}, {"base": {"repository": "f25",
                                                                "digest": "nope"}},
                {"packages": [{"name": 1}]}, {"packages": {"glibc": "1"}}):
        await error(await register(client, "f25/cockpit", digest, bad), 400, "INVALID")
    shown = await ok(await client.get("/api/v1/namespaces/f25"))
    assert shown["rebuild_days_before"] == 2
    changed = await ok(await client.patch("/api/v1/namespaces/f25",
                                          json={"rebuild_days_before": 5}))
    assert changed["rebuild_days_before"] == 5 and changed["name"] == "f25"
    listed = await ok(await client.get("/api/v1/namespaces"))
    assert listed["namespaces"][0]["rebuild_days_before"] == 5
    cleared = await ok(await client.patch("/api/v1/namespaces/f25",
                                          json={"rebuild_days_before": None}))
    assert cleared["rebuild_days_before"] is None
    for value in (-1, 366, "x", True):
        await error(await client.patch("/api/v1/namespaces/f25",
                                       json={"rebuild_days_before": value}), 400, "INVALID")
    await error(await client.patch("/api/v1/namespaces/nope",
                                   json={"rebuild_days_before": 1}), 404, "NOT_FOUND")
    await error(await client.patch("/api/v1/namespaces/f25", json={"interval_days": 1}),
                400, "INVALID")
