"""Issue 16 part B with authentication on, as ``strata serve`` runs it: a release published
through the JSON API attaches a signed SBOM and provenance to each image it publishes (and to
nothing else), and in a release-managed repository no account, admin included, pushes an
artifact with those artifact types through ``/v2/`` (rule ``attestation-release-only``);
elsewhere such artifacts are ordinary pushes."""

from __future__ import annotations

import hashlib
import json

from auth.conftest import IMAGE, AuthEnv
from auth.helpers import assert_refused, bearer
from auth.test_stream_rules import build, push_blobs, put
from strata.oci import mediatypes as mt
from strata.trust import cosign

from .test_signature_rules import env as env
from .test_signature_rules import released


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def _referrers(env: AuthEnv, repo: str, digest: str,
                     artifact_type: str | None = None) -> list[dict[str, str]]:
    params = {"artifactType": artifact_type} if artifact_type else {}
    resp = await env.client.get(f"/v2/{repo}/referrers/{digest}", params=params,
                                headers=env.creds("admin"))
    assert resp.status == 200, await resp.text()
    return list(json.loads(await resp.read())["manifests"])


async def _artifact(env: AuthEnv, repo: str, artifact_type: str, subject: str,
                    body: bytes) -> bytes:
    """An OCI 1.1 artifact manifest of ``body`` referring to ``subject``, its blobs pushed."""
    for blob in (b"{}", body):
        resp = await env.client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": sha(blob)},
                                     data=blob, headers=env.creds("admin"))
        assert resp.status == 201, await resp.text()
    return json.dumps({
        "schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "artifactType": artifact_type,
        "config": {"mediaType": mt.OCI_EMPTY, "digest": mt.EMPTY_JSON_DIGEST, "size": 2},
        "layers": [{"mediaType": artifact_type, "digest": sha(body), "size": len(body)}],
        "subject": {"mediaType": mt.OCI_MANIFEST, "digest": subject, "size": 1},
    }).encode()


async def test_a_release_through_the_api_attaches_signed_sbom_and_provenance(
        env: AuthEnv) -> None:
    digest = await released(env, "130")
    layer, config, pending = build("131", "1.f25docker")  # pushed and registered, not released
    await push_blobs(env, layer, config)
    assert (await put(env, sha(pending), pending, env.creds("maint"))).status == 201
    resp = await env.client.post("/api/v1/candidates", json={
        "reference": f"{IMAGE}@{sha(pending)}"}, headers=env.creds("maint"))
    assert resp.status in (200, 201), await resp.text()
    for artifact_type in (mt.CYCLONEDX_JSON, mt.IN_TOTO_JSON):
        (found,) = await _referrers(env, IMAGE, digest, artifact_type)
        signatures = await _referrers(env, IMAGE, found["digest"], mt.COSIGN_SIGNATURE_ARTIFACT)
        assert len(signatures) == 1
        resp = await env.client.get(
            f"/v2/{IMAGE}/manifests/{cosign.signature_tag(found['digest'])}",
            headers={**env.creds("admin"), "Accept": mt.OCI_MANIFEST})
        assert resp.status == 200
        assert await _referrers(env, IMAGE, sha(pending), artifact_type) == []


async def test_no_account_pushes_an_sbom_or_provenance_through_v2(env: AuthEnv) -> None:
    digest = await released(env, "130")
    token = await env.token("admin", f"repository:{IMAGE}:pull,push,delete")
    for artifact_type in (mt.CYCLONEDX_JSON, mt.IN_TOTO_JSON):
        fake = await _artifact(env, IMAGE, artifact_type, digest, b'{"fake": true}')
        for headers in (env.creds("admin"), bearer(token), env.creds("maint"),
                        env.creds("releng")):
            resp = await env.client.put(f"/v2/{IMAGE}/manifests/{sha(fake)}", data=fake,
                                        headers={**headers, "Content-Type": mt.OCI_MANIFEST})
            doc = await assert_refused(resp, 403, "DENIED")
            assert doc["errors"][0]["detail"]["rule"] == "attestation-release-only"
        assert len(await _referrers(env, IMAGE, digest, artifact_type)) == 1  # the release's
    # another artifact type (e.g. a maintainer's own scan report) is an ordinary push
    other = await _artifact(env, IMAGE, "application/vnd.example.report+json", digest, b"{}")
    resp = await env.client.put(f"/v2/{IMAGE}/manifests/{sha(other)}", data=other,
                                headers={**env.creds("maint"), "Content-Type": mt.OCI_MANIFEST})
    assert resp.status == 201, await resp.text()


async def test_outside_managed_repositories_they_are_ordinary_pushes(env: AuthEnv) -> None:
    repo = "scratch/thing"
    layer = b"scratch layer"
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": [sha(layer)]}}).encode()
    for blob in (layer, config):
        resp = await env.client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": sha(blob)},
                                     data=blob, headers=env.creds("admin"))
        assert resp.status == 201, await resp.text()
    image = json.dumps({
        "schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
        "config": {"mediaType": mt.OCI_CONFIG, "digest": sha(config), "size": len(config)},
        "layers": [{"mediaType": mt.OCI_LAYER_GZIP, "digest": sha(layer), "size": len(layer)}],
    }).encode()
    resp = await env.client.put(f"/v2/{repo}/manifests/{sha(image)}", data=image,
                                headers={**env.creds("admin"), "Content-Type": mt.OCI_MANIFEST})
    assert resp.status == 201, await resp.text()
    sbom = await _artifact(env, repo, mt.CYCLONEDX_JSON, sha(image), b'{"bomFormat": "x"}')
    resp = await env.client.put(f"/v2/{repo}/manifests/{sha(sbom)}", data=sbom,
                                headers={**env.creds("admin"), "Content-Type": mt.OCI_MANIFEST})
    assert resp.status == 201, await resp.text()
    assert [m["digest"] for m in await _referrers(env, repo, sha(image))] == [sha(sbom)]
