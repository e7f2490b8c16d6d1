"""Issue 16 with authentication on, as ``strata serve`` runs it: in a release-managed
repository only a release writes signatures -- no account, admin included, pushes or deletes a
``sha256-<hex>.sig`` tag or pushes a cosign signature referrer through ``/v2/``; releases
published through the JSON API sign exactly what they publish; the key routes (list, rotate,
PEM) and who may rotate."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest

from auth.conftest import IMAGE, AuthEnv, EnvFactory
from auth.helpers import assert_refused, bearer
from auth.test_stream_rules import build, push_blobs, put
from strata.oci import mediatypes as mt
from strata.trust import cosign, keys

from .conftest import PASSPHRASE

JSON_MANIFEST = {"Content-Type": mt.OCI_MANIFEST}


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
async def env(make_env: EnvFactory) -> AuthEnv:
    env = await make_env(release=True, signing=PASSPHRASE)
    for path, body in (("/api/v1/namespaces", {"name": "f25", "dist_tag": "f25docker"}),
                       ("/api/v1/images", {"repository": IMAGE, "reason": "fixture"})):
        resp = await env.client.post(path, json=body, headers=env.creds("admin"))
        assert resp.status == 201, await resp.text()
    return env


async def released(env: AuthEnv, version: str) -> str:
    """Push, register and publish (out of band, through the JSON API) a build; its digest."""
    layer, config, manifest = build(version, "1.f25docker")
    await push_blobs(env, layer, config)
    assert (await put(env, sha(manifest), manifest, env.creds("maint"))).status == 201
    resp = await env.client.post("/api/v1/releases/oob", json={
        "references": [f"{IMAGE}@{sha(manifest)}"], "advisories": ["FEDORA-1"],
        "reason": "test"}, headers=env.creds("releng"))
    assert resp.status in (200, 201), await resp.text()
    return sha(manifest)


async def forged_signature(env: AuthEnv, digest: str, *, referrer: bool) -> bytes:
    """A cosign signature of ``digest`` made with a key of the pusher's own, its blobs
    pushed; the manifest (tag form, or referrer form with ``subject``)."""
    other = keys.generate(keys.Passphrase(b"someone else's passphrase"))
    key = keys.SigningKey(other, keys.Passphrase(b"someone else's passphrase"))
    payload = cosign.payload(f"registry.example/{IMAGE}", digest)
    layer = cosign.Layer.of(payload, key.sign(payload))
    subject = {"mediaType": mt.OCI_MANIFEST, "digest": digest, "size": 1}
    made = cosign.artifacts([layer], subject)
    for blob in (payload, *made.blobs):
        resp = await env.client.post(f"/v2/{IMAGE}/blobs/uploads/", params={"digest": sha(blob)},
                                     data=blob, headers=env.creds("admin"))
        assert resp.status == 201, await resp.text()
    return made.referrer_manifest if referrer else made.tag_manifest


async def test_no_account_writes_a_signature_through_v2(env: AuthEnv) -> None:
    digest = await released(env, "130")
    tag = cosign.signature_tag(digest)
    forged = await forged_signature(env, digest, referrer=False)
    token = await env.token("admin", f"repository:{IMAGE}:pull,push,delete")
    for headers in (env.creds("admin"), bearer(token), env.creds("maint"), env.creds("releng")):
        # over the release's signature, and by digest (a referrer or a tag-form copy)
        doc = await assert_refused(await put(env, tag, forged, headers), 403, "DENIED")
        assert doc["errors"][0]["detail"]["rule"] == "signature-release-only"
        for body in (forged, await forged_signature(env, digest, referrer=True)):
            doc = await assert_refused(await put(env, sha(body), body, headers), 403, "DENIED")
            assert doc["errors"][0]["detail"]["rule"] == "signature-release-only"
        resp = await env.client.delete(f"/v2/{IMAGE}/manifests/{tag}", headers=headers)
        doc = await assert_refused(resp, 403, "DENIED")
        if headers in (env.creds("admin"), bearer(token)):  # the others may not delete at all
            assert doc["errors"][0]["detail"]["rule"] == "signature-release-only"
    # a signature for a digest no release published: refused as well (no tag yet)
    other = sha(b"not an image")
    tag_other = cosign.signature_tag(other)
    body = await forged_signature(env, other, referrer=False)
    doc = await assert_refused(await put(env, tag_other, body, env.creds("admin")), 403,
                               "DENIED")
    assert doc["errors"][0]["detail"]["rule"] == "signature-release-only"
    # what the release wrote is still there, and verifies with the namespace's key
    resp = await env.client.get(f"/v2/{IMAGE}/manifests/{tag}",
                                headers={**env.creds("admin"), "Accept": mt.OCI_MANIFEST})
    assert resp.status == 200
    assert resp.headers["Content-Type"] == mt.OCI_MANIFEST
    [layer] = cosign.layers_of(await resp.read())
    payload = await (await env.client.get(f"/v2/{IMAGE}/blobs/{layer.digest}",
                                          headers=env.creds("admin"))).read()
    data = await (await env.client.get("/api/v1/namespaces/f25/keys")).json()
    [key] = data["keys"]
    assert keys.verify(key["public_key"], payload, base64.b64decode(layer.signature_b64))
    # the referrers API lists the release's signature referrer
    resp = await env.client.get(f"/v2/{IMAGE}/referrers/{digest}", headers=env.creds("admin"))
    types = [d.get("artifactType") for d in (await resp.json())["manifests"]]
    assert mt.COSIGN_SIGNATURE_ARTIFACT in types


async def test_signatures_in_unmanaged_repositories_stay_open(env: AuthEnv) -> None:
    """Scratch space (no namespace, no image) takes what signing tools push."""
    layer, config, manifest = build("1", "1")
    for blob in (layer, config):
        resp = await env.client.post("/v2/scratch/x/blobs/uploads/",
                                     params={"digest": sha(blob)}, data=blob,
                                     headers=env.creds("admin"))
        assert resp.status == 201
    resp = await env.client.put(f"/v2/scratch/x/manifests/{sha(manifest)}", data=manifest,
                                headers={**env.creds("admin"), **JSON_MANIFEST})
    assert resp.status == 201
    payload = cosign.payload("registry.example/scratch/x", sha(manifest))
    sig = cosign.artifacts([cosign.Layer.of(payload, b"0")],
                           {"mediaType": mt.OCI_MANIFEST, "digest": sha(manifest),
                            "size": len(manifest)})
    for blob in (payload, *sig.blobs):
        resp = await env.client.post("/v2/scratch/x/blobs/uploads/",
                                     params={"digest": sha(blob)}, data=blob,
                                     headers=env.creds("admin"))
        assert resp.status == 201
    resp = await env.client.put(f"/v2/scratch/x/manifests/{sig.tag}", data=sig.tag_manifest,
                                headers={**env.creds("admin"), **JSON_MANIFEST})
    assert resp.status == 201, await resp.text()


async def test_key_routes(env: AuthEnv) -> None:
    first = await (await env.client.get("/api/v1/namespaces/f25/keys")).json()
    assert first["signed_identity"] == "registry.example/f25"
    [old] = first["keys"]
    assert old["status"] == "current"
    assert "private" not in json.dumps(first).lower()
    for account, status, code in (("maint", 403, "DENIED"), ("reviewer", 403, "DENIED")):
        resp = await env.client.post("/api/v1/namespaces/f25/keys/rotate",
                                     headers=env.creds(account))
        doc = await assert_refused(resp, status, code)
        assert doc["errors"][0]["detail"] == {"needs": "needs role releng or admin"}
    await assert_refused(await env.client.post("/api/v1/namespaces/f25/keys/rotate"), 401,
                         "UNAUTHORIZED")
    await assert_refused(await env.client.post("/api/v1/namespaces/f99/keys/rotate",
                                               headers=env.creds("releng")), 404, "NOT_FOUND")
    await assert_refused(await env.client.get("/api/v1/namespaces/f99/keys"), 404, "NOT_FOUND")
    resp = await env.client.post("/api/v1/namespaces/f25/keys/rotate",
                                 headers=env.creds("releng"))
    assert resp.status == 201, await resp.text()
    rotated: dict[str, Any] = await resp.json()
    assert [(k["key_id"], k["status"]) for k in rotated["keys"]][1] == (old["key_id"],
                                                                        "retired")
    new = rotated["keys"][0]
    assert new["status"] == "current" and new["created_by"] == "releng"
    pem = await (await env.client.get("/keys/f25.pub")).text()
    assert pem == new["public_key"] + old["public_key"]
    assert pem.count("-----BEGIN PUBLIC KEY-----") == 2
    resp = await env.client.get("/keys/f99.pub")
    assert resp.status == 404
