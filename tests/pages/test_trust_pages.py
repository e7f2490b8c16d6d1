"""Trust in the catalog (issues 15/16): each image and each release shows its signature (which
namespace key signed it, or unsigned), its SBOM and provenance with download links, and the
namespace page the public key URL and the ``strata trust config`` hint -- on the pages and in
``/api/v1/browse``; an image with no attestations says so, a hostile pushed referrer is
escaped and never shown as signed, a private namespace's trust is hidden like the rest."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import aiohttp
import pytest
import sqlalchemy as sa

from strata.auth.policy import public_namespaces
from strata.client.registry import ClientError
from strata.meta.database import Database
from strata.meta.key_store import KeyStore
from strata.meta.rebuild_store import RebuildStore
from strata.oci import mediatypes as mt
from strata.registry.service import Registry
from strata.release.engine import ReleaseEngine
from strata.release.webhooks import WebhookSecurity
from strata.server.auth import TokenAuth
from strata.trust.attach import Attestations
from strata.trust.keys import Passphrase
from strata.trust.signer import TrustSigner
from support.clock import SettableClock
from support.release import release_engine

from .conftest import BACKENDS, PASSWORD
from .helpers import (
    HOSTILE,
    RELENG,
    Client,
    auth,
    image_blobs,
    oci,
    ok,
    push_build,
    seed,
    sha256,
)
from .test_pages import get_page, no_hostile_markup

USER = ("rel", PASSWORD)
REL = {"Authorization": aiohttp.encode_basic_auth(*USER)}


@pytest.fixture
def engine(db: sa.Engine, registry: Registry, clock: SettableClock) -> ReleaseEngine:
    """Releases signed, with SBOM and provenance attached (as ``strata serve`` wires it)."""
    database = Database(db, clock=clock)
    signer = TrustSigner(registry, Passphrase(b"trust pages passphrase"),
                         public_host="registry.example", store=KeyStore(database))
    attestations = Attestations(registry, RebuildStore(database), host="registry.example",
                                signer=signer)
    return release_engine(db, registry, public_host="registry.example", clock=clock,
                          webhook_security=WebhookSecurity.ephemeral(allow_private=True),
                          signer=attestations)


async def _fake_sbom(client: Client, repo: str, digest: str) -> str:
    """Push an SBOM-typed referrer of ``repo@digest`` through /v2/ (anyone with push could):
    unsigned, with a hostile annotation."""
    registry = oci(client)
    body = b'{"bomFormat":"CycloneDX","specVersion":"1.5"}'
    await registry.push_blob(repo, body)
    await registry.push_blob(repo, b"{}")
    subject = await registry.get_manifest(repo, digest)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "artifactType": mt.CYCLONEDX_JSON,
        "config": {"mediaType": mt.OCI_EMPTY, "digest": mt.EMPTY_JSON_DIGEST, "size": 2},
        "layers": [{"mediaType": mt.CYCLONEDX_JSON, "digest": sha256(body),
                    "size": len(body)}],
        "subject": {"mediaType": subject.media_type, "digest": digest,
                    "size": len(subject.content)},
        "annotations": {"org.opencontainers.image.created": HOSTILE}}).encode()
    return await registry.put_manifest(repo, sha256(manifest), manifest, mt.OCI_MANIFEST)


@BACKENDS
async def test_image_and_release_show_signature_sbom_and_provenance(client: Client,
                                                                    db: sa.Engine) -> None:
    data = await seed(client)
    [key] = await KeyStore(Database(db)).read(lambda tx: tx.keys("f25"))
    key_id = key.key_id
    image = await ok(await client.get("/api/v1/browse/images/f25/cockpit"))
    trust = image["trust"]
    assert trust["digest"] == data["130"] == image["shown_digest"]
    assert trust["signature"] == {"signed": True, "key_id": key_id, "key_status": "current",
                                  "identity": "registry.example/f25/cockpit"}
    assert trust["public_key_url"] == "/keys/f25.pub"
    for kind, media_type in (("sbom", mt.CYCLONEDX_JSON), ("provenance", mt.IN_TOTO_JSON)):
        [doc] = trust[kind]
        assert doc["media_type"] == media_type and doc["signature"]["key_id"] == key_id
        assert doc["url"] == f"/v2/f25/cockpit/blobs/{doc['digest']}"
        # the link downloads the document itself
        blob = await client.get(doc["url"])
        body = await blob.read()
        assert blob.status == 200 and sha256(body) == doc["digest"]
        parsed = json.loads(body)
        if kind == "sbom":
            assert parsed["bomFormat"] == "CycloneDX"
        else:
            assert parsed["subject"][0]["digest"]["sha256"] == data["130"].split(":")[1]
    page = await get_page(client, "/f25/cockpit")
    no_hostile_markup(page)
    assert f'by the f25 release key <code title="{key_id}">{key_id[:12]}</code>' in page
    assert f'href="{trust["sbom"][0]["url"]}"' in page
    assert f'href="{trust["provenance"][0]["url"]}"' in page
    assert 'href="/keys/f25.pub"' in page
    # the release: every build with its signature and documents, in the JSON and the page
    rel = await ok(await client.get(f"/api/v1/browse/releases/{data['release']}"))
    assert {b["digest"] for b in rel["builds"]} == {data["129"], data["130"], data["base"]}
    for build in rel["builds"]:
        assert build["trust"]["signature"]["key_id"] == key_id, build["repository"]
        assert len(build["trust"]["sbom"]) == 1 and len(build["trust"]["provenance"]) == 1
    page = await get_page(client, f"/-/releases/{data['release']}")
    assert page.count('<span class="badge signed">signed</span>') == 3 * 3
    for build in rel["builds"]:
        assert f'href="{build["trust"]["sbom"][0]["url"]}"' in page
    assert "strata trust config f25" in page
    # the namespace: its public key and how to configure clients
    ns = await ok(await client.get("/api/v1/browse/namespaces/f25"))
    assert ns["trust"]["public_key_url"] == "/keys/f25.pub"
    assert ns["trust"]["client_config"] == "strata trust config f25"
    assert [k["key_id"] for k in ns["trust"]["keys"]] == [key_id]
    page = await get_page(client, "/f25")
    assert 'href="/keys/f25.pub"' in page and "strata trust config f25" in page
    assert key_id[:12] in page


async def test_unsigned_image_without_attestations_and_a_hostile_referrer(
        client: Client) -> None:
    await seed(client)
    # 131 is a candidate: no signature, no SBOM, no provenance
    rows = await ok(await client.get("/api/v1/browse/images/f25/cockpit"))
    assert rows["trust"]["signature"]["signed"] is True  # latest (130) is shown
    await ok(await client.post("/api/v1/images", json={
        "repository": "f25/bare", "summary": "never released", "reason": "t"},
        headers=auth(RELENG)), 201)
    await push_build(client, "f25/bare", "1", "1.f25docker")
    bare = await ok(await client.get("/api/v1/browse/images/f25/bare"))
    assert bare["trust"]["signature"] == {"signed": False, "key_id": None,
                                          "key_status": None, "identity": None}
    assert bare["trust"]["sbom"] == [] and bare["trust"]["provenance"] == []
    page = await get_page(client, "/f25/bare")
    assert '<span class="badge unsigned">unsigned</span>' in page
    assert "no SBOM" in page and "no provenance" in page
    # a registered image can carry an SBOM-typed referrer pushed before it was managed
    # (/v2/ refuses one afterwards): listed, escaped, never shown as signed
    layers, config = image_blobs("evil", "1", "1.f25docker")
    digest = await oci(client).push_image("evil", None, layers, config)
    fake = await _fake_sbom(client, "evil", digest)
    await ok(await client.post("/api/v1/images", json={
        "repository": "evil", "namespace": "f25", "reason": "t"}, headers=auth(RELENG)), 201)
    await ok(await client.post("/api/v1/candidates", json={"reference": f"evil@{digest}"},
                               headers=auth(RELENG)), 201)
    with pytest.raises(ClientError) as refused:
        await _fake_sbom(client, "evil", digest)
    assert refused.value.status == 403
    image = await ok(await client.get("/api/v1/browse/images/_/evil"))
    [doc] = image["trust"]["sbom"]
    assert doc["manifest"] == fake and doc["signature"]["signed"] is False
    assert doc["created"] == HOSTILE and doc["url"] == f"/v2/evil/blobs/{doc['digest']}"
    page = await get_page(client, "/-/images/evil")
    no_hostile_markup(page)
    assert "&lt;script&gt;alert(&#39;pwned&#39;)" in page
    assert page.count('<span class="badge unsigned">unsigned</span>') == 2
    assert f'href="{doc["url"]}"' in page


async def test_private_namespace_trust_is_hidden(
        make_client: Callable[..., Awaitable[Client]],
        make_auth: Callable[..., TokenAuth]) -> None:
    client = await make_client(auth=make_auth(public_namespaces(["f25"])), public_url=None)
    await ok(await client.post("/api/v1/namespaces", json={
        "name": "f26", "dist_tag": "f26docker", "anchor": "2025-06-10"}, headers=REL), 201)
    await ok(await client.post("/api/v1/images", json={
        "repository": "f26/private", "summary": "SECRET", "reason": "t"}, headers=REL), 201)
    await push_build(client, "f26/private", "1", "1.f26docker", user=USER)
    published = await ok(await client.post("/api/v1/releases/publish",
                                            json={"namespace": "f26"}, headers=REL), 201)
    name = published["name"]
    for path in ("/api/v1/browse/images/f26/private", f"/api/v1/browse/releases/{name}",
                 "/api/v1/browse/namespaces/f26"):
        resp = await client.get(path)
        assert resp.status == 404, path
        assert "key_id" not in await resp.text()
    for path in ("/f26/private", f"/-/releases/{name}", "/f26"):
        assert (await client.get(path, allow_redirects=False)).status == 404, path
    # an account that may pull it sees the same trust data, and its links work for it
    image = await ok(await client.get("/api/v1/browse/images/f26/private", headers=REL))
    assert image["trust"]["signature"]["signed"] is True
    [doc] = image["trust"]["sbom"]
    assert (await client.get(doc["url"])).status == 401  # anonymous: the pull rule holds
    rel = await ok(await client.get(f"/api/v1/browse/releases/{name}", headers=REL))
    assert rel["builds"][0]["trust"]["signature"]["signed"] is True
