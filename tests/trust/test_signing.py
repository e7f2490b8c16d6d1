"""Release signing on the engine (SQLite): every path that publishes signs each released
digest (cosign tag form + OCI 1.1 referrer), nothing else is signed, keys are encrypted at
rest, rotation keeps old signatures valid, a failure to sign publishes nothing."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from release.helpers import push_build, tag_map
from strata.errors import Code
from strata.meta import schema as t
from strata.meta.database import Database
from strata.meta.key_store import KeyStore
from strata.oci import mediatypes as mt
from strata.oci.digest import Digest
from strata.oci.names import ManifestRef, RepositoryName
from strata.registry.service import Registry
from strata.release.engine import ReleaseEngine
from strata.release.errors import ReleaseError
from strata.trust import cosign, keys
from strata.trust.keys import Passphrase
from strata.trust.service import TrustService
from strata.trust.signer import TrustSigner
from support.release import release_engine

from .conftest import HOST, PASSPHRASE, Clock
from .helpers import referrer_types, sig_manifest, signatures, valid

REPO = "f25/x"
ANCHOR = dt.date(2025, 6, 10)


async def setup_ns(engine: ReleaseEngine, *images: str) -> None:
    await engine.inventory.add_namespace("f25", "f25docker", anchor=ANCHOR)
    for repo in images or (REPO,):
        await engine.inventory.add_image(repo, actor="releng", reason="test fixture")


async def candidate(engine: ReleaseEngine, registry: Registry, version: str, release: str,
                    repo: str = REPO, salt: str = "") -> str:
    digest = await push_build(registry, repo, version, f"{release}.f25docker", salt=salt)
    await engine.inventory.add_candidate(repo, digest, actor="maint")
    return digest


async def test_scheduled_release_signs_each_released_digest(
        engine: ReleaseEngine, registry: Registry, trust: TrustService, db: sa.Engine) -> None:
    await setup_ns(engine)
    d129 = await candidate(engine, registry, "129", "1")
    d130 = await candidate(engine, registry, "130", "1")
    # pushed but never registered: not released, so never signed
    stray = await push_build(registry, REPO, "131", "1.f25docker")
    await engine.publish(namespace="f25", actor="releng")

    [key] = await trust.keys("f25")
    assert key.status == "current"
    for digest in (d129, d130):
        [sig] = await signatures(registry, REPO, digest)
        assert valid(sig, key.public_pem, REPO, digest)
        assert cosign.SIGNATURE_ARTIFACT_TYPE in await referrer_types(registry, REPO, digest)
    assert await signatures(registry, REPO, stray) == []
    assert await referrer_types(registry, REPO, stray) == []
    # the tag form is recorded in the tag history as the release's write
    with db.connect() as conn:
        actors = {row.actor for row in conn.execute(sa.select(t.tag_events).where(
            t.tag_events.c.tag == cosign.signature_tag(d130)))}
        stored = conn.execute(sa.select(t.signing_keys.c.private_pem)).scalar_one()
    assert actors == {"release"}
    assert stored.startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert PASSPHRASE.value.decode() not in stored


async def test_tag_form_is_what_containers_image_writes(
        engine: ReleaseEngine, registry: Registry) -> None:
    """Byte for byte: containers/image's own sigstore attachment of one signature."""
    await setup_ns(engine)
    digest = await candidate(engine, registry, "130", "1")
    await engine.publish(namespace="f25", actor="releng")
    record = await sig_manifest(registry, REPO, digest)
    assert record is not None
    [layer] = cosign.layers_of(record.content)
    payload = (b'{"critical":{"identity":{"docker-reference":"registry.example/f25/x"},'
               b'"image":{"docker-manifest-digest":"' + digest.encode() + b'"},'
               b'"type":"cosign container image signature"},"optional":null}')
    [sig] = await signatures(registry, REPO, digest)
    assert sig.payload == payload
    config = (b'{"architecture":"","os":"","config":{},"rootfs":{"type":"layers",'
              b'"diff_ids":["' + layer.digest.encode() + b'"]}}')
    expected = (
        b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'
        b'"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:'
        + hashlib.sha256(config).hexdigest().encode() + b'","size":'
        + str(len(config)).encode() + b'},"layers":[{"mediaType":'
        b'"application/vnd.dev.cosign.simplesigning.v1+json","digest":"'
        + layer.digest.encode() + b'","size":' + str(len(payload)).encode()
        + b',"annotations":{"dev.cosignproject.cosign/signature":"'
        + layer.signature_b64.encode() + b'"}}]}')
    assert record.content == expected


async def test_out_of_band_release_is_signed(engine: ReleaseEngine, registry: Registry,
                                             trust: TrustService) -> None:
    await setup_ns(engine)
    digest = await push_build(registry, REPO, "130", "2.f25docker")
    await engine.oob([f"{REPO}@{digest}"], advisories=["FEDORA-2025-1"], reason="CVE",
                     actor="releng")
    [key] = await trust.keys("f25")
    [sig] = await signatures(registry, REPO, digest)
    assert valid(sig, key.public_pem, REPO, digest)


async def test_rotation_keeps_old_signatures_valid(
        engine: ReleaseEngine, registry: Registry, trust: TrustService, clock: Clock) -> None:
    await setup_ns(engine)
    first = await candidate(engine, registry, "130", "1")
    await engine.publish(namespace="f25", actor="releng")
    [old] = await trust.keys("f25")
    clock.advance(3600)
    new = await trust.rotate("f25", "admin")
    keys_now = await trust.keys("f25")
    assert [(k.key_id, k.status) for k in keys_now] == [(new.key_id, "current"),
                                                        (old.key_id, "retired")]
    clock.advance(14 * 86400)
    second = await candidate(engine, registry, "130", "2")
    await engine.publish(namespace="f25", actor="releng")
    [sig1] = await signatures(registry, REPO, first)
    [sig2] = await signatures(registry, REPO, second)
    assert valid(sig1, old.public_pem, REPO, first)
    assert not valid(sig1, new.public_pem, REPO, first)
    assert valid(sig2, new.public_pem, REPO, second)
    assert not valid(sig2, old.public_pem, REPO, second)


async def test_rotation_of_unknown_namespace(trust: TrustService) -> None:
    with pytest.raises(ReleaseError) as err:
        await trust.rotate("nope", "admin")
    assert err.value.code is Code.NOT_FOUND


async def test_wrong_passphrase_publishes_nothing(
        engine: ReleaseEngine, registry: Registry, db: sa.Engine, clock: Clock,
        trust: TrustService) -> None:
    await setup_ns(engine)
    await trust.keys("f25")  # the key, sealed with the right passphrase
    digest = await candidate(engine, registry, "130", "1")
    wrong = TrustSigner(registry, Passphrase(b"not the passphrase at all"), public_host=HOST)
    other = release_engine(db, registry, public_host=HOST, clock=clock, signer=wrong)
    with pytest.raises(ReleaseError) as err:
        await other.publish(namespace="f25", actor="releng")
    assert err.value.code is Code.UNAVAILABLE
    assert "passphrase" in err.value.message
    assert "not the passphrase" not in str(err.value)
    assert await tag_map(registry, REPO) == {}
    assert await signatures(registry, REPO, digest) == []
    [build] = await engine.inventory.candidates(namespace="f25")
    assert build.status.value == "candidate"


async def test_sign_digest_refuses_what_no_release_published(
        engine: ReleaseEngine, registry: Registry, signer: TrustSigner, db: sa.Engine) -> None:
    await setup_ns(engine)
    digest = await candidate(engine, registry, "130", "1")
    await signer.prepare_digests(REPO, [digest])
    database = Database(db)

    def go(conn: sa.Connection, _batch: object) -> None:
        signer.sign_digest(KeyStore.trust_writer(conn), "f25", REPO, digest, at=0.0)
    with pytest.raises(ReleaseError) as err:
        await database.write(go)
    assert err.value.detail == {"rule": "signature-release-only"}
    assert await signatures(registry, REPO, digest) == []


def test_passphrase_is_never_shown() -> None:
    secret = Passphrase(b"a very secret passphrase")
    assert "secret" not in repr(secret)
    with pytest.raises(keys.KeyProblem):
        Passphrase(b"short")


async def test_sign_artifact_signs_what_refers_to_a_released_build(
        engine: ReleaseEngine, registry: Registry, signer: TrustSigner,
        trust: TrustService) -> None:
    """A release artifact (a referrer) pushed after the publish is signed in a transaction of
    its own; one whose subject was never released is refused."""
    await setup_ns(engine)
    released = await candidate(engine, registry, "130", "1")
    await engine.publish(namespace="f25", actor="releng")
    pending = await candidate(engine, registry, "131", "1")  # registered after: pending
    repo = RepositoryName.parse(REPO)
    artifacts = {}
    for subject in (released, pending):
        record = await registry.manifests.get(repo, ManifestRef(digest=Digest.parse(subject)))
        body = b'{"sbom": true}'
        digest = await _push_blob(registry, repo, body)
        await _push_blob(registry, repo, b"{}")
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
            "artifactType": "application/vnd.example.report+json",
            "config": {"mediaType": mt.OCI_EMPTY, "digest": mt.EMPTY_JSON_DIGEST, "size": 2},
            "layers": [{"mediaType": "application/vnd.example.report+json", "digest": digest,
                        "size": len(body)}],
            "subject": {"mediaType": record.media_type, "digest": subject,
                        "size": record.size}}).encode()
        put = await registry.manifests.put(repo, ManifestRef(digest=Digest.of(manifest)),
                                           manifest, mt.OCI_MANIFEST)
        artifacts[subject] = str(put.digest)
    assert await signer.sign_artifact("f25", REPO, artifacts[released]) is not None
    assert await signer.sign_artifact("f25", REPO, artifacts[released]) is None  # idempotent
    [key] = await trust.keys("f25")
    [sig] = await signatures(registry, REPO, artifacts[released])
    assert valid(sig, key.public_pem, REPO, artifacts[released])
    with pytest.raises(ReleaseError) as err:
        await signer.sign_artifact("f25", REPO, artifacts[pending])
    assert err.value.detail == {"rule": "signature-release-only"}
    assert await signatures(registry, REPO, artifacts[pending]) == []


async def _push_blob(registry: Registry, repo: RepositoryName, data: bytes) -> str:
    async def once() -> AsyncIterator[bytes]:
        yield data
    digest = Digest.of(data)
    upload = await registry.uploads.start(repo)
    await registry.uploads.finish(repo, upload.id, digest, once())
    return str(digest)


def test_generated_passphrase_is_made_once_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "auth" / "signing-passphrase"
    first = Passphrase.generated_in(path)
    assert Passphrase.generated_in(path).value == first.value
    assert path.stat().st_mode & 0o777 == 0o600
    assert list(path.parent.iterdir()) == [path]  # no temporary file left
