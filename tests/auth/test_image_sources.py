"""Image sources and the review gate through the JSON API with accounts (issue 14).

``image set``: maintainers of the image change its source and summary, releng/admin
everything; a maintainer of another image is refused (before the body is read).
``image maintainers``: releng/admin; the account gets or loses its maintainer grant at once.
Candidates: only approved (active) images take them, admin included, unless releng/admin
force it with a reason, which is recorded in the image's events.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from strata.oci.mediatypes import OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST

from .conftest import IMAGE, AuthEnv, EnvFactory


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
async def env(make_env: EnvFactory) -> AuthEnv:
    env = await make_env(release=True)
    resp = await env.client.post("/api/v1/namespaces", json={
        "name": "f25", "dist_tag": "f25docker"}, headers=env.creds("admin"))
    assert resp.status == 201, await resp.text()
    resp = await env.client.post("/api/v1/images", json={
        "repository": IMAGE, "maintainers": ["maint"]}, headers=env.creds("releng"))
    assert resp.status == 201, await resp.text()
    return env


async def answer(resp: Any, status: int, code: str | None = None) -> Any:
    body = await resp.json()
    assert resp.status == status, body
    if code is not None:
        assert body["errors"][0]["code"] == code, body
    return body


async def push_build(env: AuthEnv, repo: str, name: str, version: str = "1",
                     release: str = "1.f25docker") -> str:
    """A build of ``repo`` pushed by digest by admin (no tag: allowed in any namespace)."""
    layer = hashlib.sha512(f"{repo}-{version}-{release}".encode()).digest() * 3
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Labels": {
        "name": name, "version": version, "release": release}},
        "rootfs": {"type": "layers", "diff_ids": [sha(layer)]}}, sort_keys=True).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha(config), "size": len(config)},
        "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": sha(layer), "size": len(layer)}],
    }, sort_keys=True).encode()
    for blob in (layer, config):
        resp = await env.client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": sha(blob)},
                                     data=blob, headers=env.creds("admin"))
        assert resp.status == 201, await resp.text()
    resp = await env.client.put(f"/v2/{repo}/manifests/{sha(manifest)}", data=manifest,
                                headers={**env.creds("admin"),
                                         "Content-Type": OCI_MANIFEST})
    assert resp.status == 201, await resp.text()
    return sha(manifest)


async def test_maintainer_sets_source_and_summary_of_own_image_only(env: AuthEnv) -> None:
    path = f"/api/v1/images/{IMAGE}"
    body = await answer(await env.client.patch(path, json={
        "source_url": "https://src.example/cockpit.git", "source_branch": "f25",
        "summary": "Cockpit web console"}, headers=env.creds("maint")), 200)
    assert body["source"] == {"url": "https://src.example/cockpit.git", "branch": "f25"}
    assert body["summary"] == "Cockpit web console"
    # status: releng/admin only
    err = await answer(await env.client.patch(path, json={"status": "retired"},
                                              headers=env.creds("maint")), 403, "DENIED")
    assert "status" in err["errors"][0]["message"]
    assert "needs role releng or admin" in err["errors"][0]["message"]
    # a maintainer of another image, a reviewer: refused before the body is read
    for account in ("other", "reviewer"):
        err = await answer(await env.client.patch(path, data=b"{not json",
                                                  headers=env.creds(account)), 403, "DENIED")
        assert f"needs maintainer of {IMAGE}" in err["errors"][0]["message"]
    await answer(await env.client.patch(path, data=b"{not json"), 401, "UNAUTHORIZED")
    # the source URL must pass the server's allow-list (default https:// only)
    for url in ("file:///etc", "ssh://git@host/x.git", "/srv/git/x", "git@host:x.git"):
        err = await answer(await env.client.patch(path, json={"source_url": url},
                                                  headers=env.creds("admin")), 403, "DENIED")
        assert "--source-allow" in err["errors"][0]["message"]
    await answer(await env.client.patch(path, json={"color": "red"},
                                        headers=env.creds("admin")), 400, "INVALID")
    await answer(await env.client.patch(path, json={"status": "bogus"},
                                        headers=env.creds("admin")), 400, "INVALID")
    await answer(await env.client.patch("/api/v1/images/f25/nope", json={"summary": "x"},
                                        headers=env.creds("admin")), 404, "NOT_FOUND")
    body = await answer(await env.client.patch(path, json={"status": "retired"},
                                               headers=env.creds("releng")), 200)
    assert body["status"] == "retired"
    events = (await answer(await env.client.get(f"{path}/events"), 200))["events"]
    assert [e["event"] for e in events] == ["registered", "changed", "changed"]
    assert events[1]["actor"] == "maint" and events[2]["actor"] == "releng"
    assert events[2]["detail"] == {"status": {"old": "active", "new": "retired"}}


async def test_maintainers_add_and_remove_grant_at_once(env: AuthEnv) -> None:
    path = f"/api/v1/images/{IMAGE}"
    # "other" maintains f25/other, not IMAGE
    await answer(await env.client.patch(path, json={"summary": "x"},
                                        headers=env.creds("other")), 403, "DENIED")
    # maintainers are changed by releng/admin only (before the body)
    await answer(await env.client.post(f"{path}/maintainers", data=b"{",
                                       headers=env.creds("maint")), 403, "DENIED")
    body = await answer(await env.client.post(f"{path}/maintainers", json={"add": "other"},
                                              headers=env.creds("releng")), 200)
    assert body["maintainers"] == ["maint", "other"] and body["account"] is True
    await answer(await env.client.patch(path, json={"summary": "by other"},
                                        headers=env.creds("other")), 200)
    body = await answer(await env.client.post(f"{path}/maintainers", json={"remove": "other"},
                                              headers=env.creds("admin")), 200)
    assert body["maintainers"] == ["maint"]
    await answer(await env.client.patch(path, json={"summary": "again"},
                                        headers=env.creds("other")), 403, "DENIED")
    await answer(await env.client.post(f"{path}/maintainers", json={"add": "a", "remove": "b"},
                                       headers=env.creds("admin")), 400, "INVALID")
    for bad in ("../x", "Bob", "", "a" * 65):
        await answer(await env.client.post(f"{path}/maintainers", json={"add": bad},
                                           headers=env.creds("admin")), 400, "INVALID")
    body = await answer(await env.client.post(f"{path}/maintainers", json={"add": "ghost"},
                                              headers=env.creds("admin")), 200)
    assert body["account"] is False and "ghost" in body["maintainers"]


async def test_unapproved_image_refused_for_everyone_unless_forced(env: AuthEnv) -> None:
    digest = await push_build(env, "f25/newthing", "newthing")
    ref = {"reference": f"f25/newthing@{digest}"}
    for account in ("admin", "releng", "maint"):
        err = await answer(await env.client.post("/api/v1/candidates", json=ref,
                                                 headers=env.creds(account)), 403, "DENIED")
        message = err["errors"][0]["message"]
        if account == "maint":  # not a maintainer of f25/newthing: the role refusal first
            assert "needs maintainer of f25/newthing" in message
        else:
            assert "submit it for review: strata image submit f25/newthing" in message
    # force: releng/admin only, and only with a reason
    await answer(await env.client.post("/api/v1/candidates", json={**ref, "force": True},
                                       headers=env.creds("admin")), 400, "INVALID")
    await answer(await env.client.post("/api/v1/candidates", json={**ref, "force": "yes",
                                                                   "reason": "x"},
                                       headers=env.creds("admin")), 400, "INVALID")
    build = await answer(await env.client.post("/api/v1/candidates", json={
        **ref, "force": True, "reason": "emergency import"}, headers=env.creds("admin")), 201)
    assert build["status"] == "candidate"
    image = await answer(await env.client.get("/api/v1/images/f25/newthing"), 200)
    assert image["status"] == "active"
    [event] = (await answer(await env.client.get("/api/v1/images/f25/newthing/events"),
                            200))["events"]
    assert (event["event"], event["actor"], event["reason"]) == (
        "forced-registration", "admin", "emergency import")
    assert event["detail"]["digest"] == digest


async def test_maintainer_cannot_force(env: AuthEnv) -> None:
    resp = await env.client.patch(f"/api/v1/images/{IMAGE}", json={"status": "in-review"},
                                  headers=env.creds("admin"))
    await answer(resp, 200)
    digest = await push_build(env, IMAGE, "cockpit")
    ref = {"reference": f"{IMAGE}@{digest}"}
    err = await answer(await env.client.post("/api/v1/candidates", json=ref,
                                             headers=env.creds("maint")), 403, "DENIED")
    assert "still in review" in err["errors"][0]["message"]
    err = await answer(await env.client.post("/api/v1/candidates", json={
        **ref, "force": True, "reason": "mine"}, headers=env.creds("maint")), 403, "DENIED")
    assert "needs role releng or admin" in err["errors"][0]["message"]
