"""Issue 11 with authentication on, as ``strata serve`` runs it (release API + stream rules):
no account -- admin included -- writes a stream tag or deletes a build's content through /v2/;
``candidate withdraw`` is for the image's maintainers, releng and admin; a JSON-API 403 names
the right that was missing."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from strata.oci.mediatypes import OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST

from .conftest import IMAGE, AuthEnv, EnvFactory
from .helpers import assert_refused, bearer

MANIFEST_TYPE = {"Content-Type": OCI_MANIFEST}


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def build(version: str, release: str) -> tuple[bytes, bytes, bytes]:
    """(layer, config, manifest) of an image of f25/cockpit with NVR labels."""
    layer = hashlib.sha512(f"{version}-{release}".encode()).digest() * 3
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Labels": {
        "name": "cockpit", "version": version, "release": release}},
        "rootfs": {"type": "layers", "diff_ids": [sha(layer)]}}, sort_keys=True).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha(config), "size": len(config)},
        "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": sha(layer), "size": len(layer)}],
    }, sort_keys=True).encode()
    return layer, config, manifest


@pytest.fixture
async def env(make_env: EnvFactory) -> AuthEnv:
    env = await make_env(release=True)
    resp = await env.client.post("/api/v1/namespaces", json={
        "name": "f25", "dist_tag": "f25docker"}, headers=env.creds("admin"))
    assert resp.status == 201, await resp.text()
    resp = await env.client.post("/api/v1/images", json={  # approved: takes candidates
        "repository": IMAGE, "reason": "test fixture"}, headers=env.creds("admin"))
    assert resp.status == 201, await resp.text()
    return env


async def push_blobs(env: AuthEnv, layer: bytes, config: bytes) -> None:
    for blob in (layer, config):
        resp = await env.client.post(f"/v2/{IMAGE}/blobs/uploads/",
                                     params={"digest": sha(blob)}, data=blob,
                                     headers=env.creds("admin"))
        assert resp.status == 201, await resp.text()


async def put(env: AuthEnv, reference: str, manifest: bytes,
              headers: dict[str, str]) -> Any:
    return await env.client.put(f"/v2/{IMAGE}/manifests/{reference}", data=manifest,
                                headers={**headers, **MANIFEST_TYPE})


async def test_admin_cannot_mint_a_stream_tag_through_v2(env: AuthEnv) -> None:
    layer, config, manifest = build("131", "1.f25docker")
    await push_blobs(env, layer, config)
    admin_token = await env.token("admin", f"repository:{IMAGE}:pull,push,delete")
    for headers in (env.creds("admin"), bearer(admin_token), env.creds("maint")):
        for tag in ("131-1.f25docker", "131", "latest"):
            doc = await assert_refused(await put(env, tag, manifest, headers), 403, "DENIED")
            err = doc["errors"][0]
            assert err["detail"]["rule"] == "stream-tags-release-only"
            assert f"strata candidate add {IMAGE}@{sha(manifest)}" in err["message"]
    resp = await put(env, sha(manifest), manifest, env.creds("admin"))  # by digest: fine
    assert resp.status == 201, await resp.text()
    resp = await env.client.get(f"/v2/{IMAGE}/tags/list", headers=env.creds("admin"))
    assert (await resp.json())["tags"] == []


async def test_pending_build_content_and_withdraw(env: AuthEnv) -> None:
    layer, config, manifest = build("130", "1.f25docker")
    await push_blobs(env, layer, config)
    digest = sha(manifest)
    assert (await put(env, digest, manifest, env.creds("maint"))).status == 201
    ref = {"reference": f"{IMAGE}@{digest}"}
    resp = await env.client.post("/api/v1/candidates", json=ref, headers=env.creds("maint"))
    assert resp.status == 201, await resp.text()
    for path in (f"/v2/{IMAGE}/manifests/{digest}", f"/v2/{IMAGE}/blobs/{sha(layer)}"):
        doc = await assert_refused(await env.client.delete(path, headers=env.creds("admin")),
                                   403, "DENIED")
        assert doc["errors"][0]["detail"]["rule"] == "build-protected"
    withdraw = {**ref, "reason": "wrong base"}
    for account, needs in (("other", f"needs maintainer of {IMAGE} (or role releng or admin)"),
                           ("reviewer", "needs role maintainer (of the image), releng or admin")):
        resp = await env.client.post("/api/v1/candidates/withdraw", json=withdraw,
                                     headers=env.creds(account))
        doc = await assert_refused(resp, 403, "DENIED")
        assert doc["errors"][0]["detail"] == {"needs": needs}
        assert needs in doc["errors"][0]["message"]
    await assert_refused(await env.client.post("/api/v1/candidates/withdraw", json=withdraw),
                         401, "UNAUTHORIZED")
    resp = await env.client.post("/api/v1/candidates/withdraw", json=withdraw,
                                 headers=env.creds("maint"))
    assert resp.status == 200, await resp.text()
    build_json = await resp.json()
    assert build_json["status"] == "withdrawn"
    assert (build_json["withdrawn"]["by"], build_json["withdrawn"]["reason"]) == (
        "maint", "wrong base")
    listed = await (await env.client.get("/api/v1/candidates",
                                         params={"status": "unreleased"})).json()
    assert [(b["digest"], b["status"]) for b in listed["candidates"]] == [(digest, "withdrawn")]
    pending = await (await env.client.get("/api/v1/candidates")).json()
    assert pending["candidates"] == []
    resp = await env.client.delete(f"/v2/{IMAGE}/manifests/{digest}", headers=env.creds("admin"))
    assert resp.status == 202, await resp.text()


@pytest.mark.parametrize(("account", "path", "body", "needs"), [
    ("maint", "/api/v1/namespaces", {"name": "f26", "dist_tag": "x"},
     "needs role releng or admin"),
    ("releng", "/api/v1/webhooks", {"url": "http://127.0.0.1:1/"}, "needs role admin"),
    ("other", "/api/v1/candidates", {"reference": f"{IMAGE}@sha256:{'0' * 64}"},
     f"needs maintainer of {IMAGE} (or role releng or admin)"),
    ("reviewer", "/api/v1/releases/publish", {}, "needs role releng or admin"),
])
async def test_a_json_api_403_names_the_missing_right(env: AuthEnv, account: str, path: str,
                                                      body: dict[str, Any], needs: str) -> None:
    resp = await env.client.post(path, json=body, headers=env.creds(account))
    doc = await assert_refused(resp, 403, "DENIED")
    assert doc["errors"][0]["detail"] == {"needs": needs}
    assert doc["errors"][0]["message"].endswith(needs)
