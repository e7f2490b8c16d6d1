"""SBOM and provenance referrers made at release publish (issue 16 part B), read back with the
standard parsers: CycloneDX's JSON schema validator and deserializer, in-toto-attestation's
Statement and SLSA provenance v1 protos."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from release.helpers import _once, push_build, sha256
from strata.build.record import EMPTY_JSON, RECORD_ARTIFACT_TYPE, record_manifest
from strata.meta.connection import create_engine, migrate
from strata.meta.database import Database
from strata.meta.key_store import KeyStore
from strata.meta.rebuild_store import RebuildStore
from strata.meta.registry_store import RegistryStore
from strata.meta.release_store import ReleaseWriter
from strata.meta.review_store import ReviewStore
from strata.oci import mediatypes as mt
from strata.oci.digest import Digest
from strata.oci.names import ManifestRef, RepositoryName
from strata.registry.service import Registry
from strata.release.engine import ReleaseEngine
from strata.release.errors import ReleaseError
from strata.release.model import Release, ReleaseKind, ReleaseStatus
from strata.release.policy import ReleaseTagPolicy
from strata.release.rebuild import BuildInputs, Package
from strata.review.sources import ImageSources
from strata.storage.filesystem import FilesystemBlobStore
from strata.trust.attach import Attestations
from strata.trust.facts import ImageFacts, record_fields
from strata.trust.provenance import (
    PROVENANCE_ARTIFACT_TYPE,
    ProvenanceError,
    make_provenance,
    parse_provenance,
)
from strata.trust.sbom import SBOM_ARTIFACT_TYPE, validate_sbom
from strata.trust.service import TrustService
from strata.trust.signer import TrustSigner
from strata.trust.verify import Verifier
from support.clock import SettableClock as Clock
from support.postgres import PostgresCluster
from support.release import release_engine
from trust.conftest import PASSPHRASE
from trust.helpers import signatures, valid

REPO = "f25/x"
HOST = "registry.example"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
BASE_DIGEST = "sha256:" + "b" * 64
PACKAGES = (Package("bash", "5.2.15-3.fc25", "x86_64"), Package("glibc", "2.36-9.fc25", "x86_64"))


@pytest.fixture
def attestations(db: sa.Engine, registry: Registry, signer: TrustSigner) -> Attestations:
    return Attestations(registry, RebuildStore(Database(db)), host=HOST, signer=signer)


@pytest.fixture
def engine(db: sa.Engine, registry: Registry, clock: Clock,
           attestations: Attestations) -> ReleaseEngine:
    return release_engine(db, registry, public_host=HOST, clock=clock, signer=attestations)


async def _setup(engine: ReleaseEngine) -> None:
    await engine.inventory.add_namespace("f25", "f25docker", anchor=dt.date(2025, 6, 10))
    await engine.inventory.add_image(REPO, actor="releng", reason="test fixture")


async def _candidate(engine: ReleaseEngine, registry: Registry, db: sa.Engine,
                     release: str = "1", *, with_record: bool = True) -> str:
    digest = await push_build(registry, REPO, "1.0", f"{release}.f25docker")
    if with_record:
        await _push_record(registry, digest)
    await RebuildStore(Database(db)).record_inputs(REPO, digest, BuildInputs(
        source_url="https://git.example/x.git", source_commit=COMMIT,
        base_repository="f25/base", base_tag="25", base_digest=BASE_DIGEST,
        packages=PACKAGES))
    await engine.inventory.add_candidate(REPO, digest, actor="maint")
    return digest


async def _push_record(registry: Registry, digest: str, version: str = "9.9.9") -> str:
    """A build record like ``strata build`` pushes (the fields the provenance reads); its
    manifest digest."""
    repo = RepositoryName.parse(REPO)
    image = await registry.manifests.get(repo, ManifestRef(digest=Digest.parse(digest)))
    record = {
        "schema": "strata.build.record/v1",
        "image": {"repository": REPO, "digest": digest},
        "source": {"url": "https://git.example/x.git", "ref": "f25", "commit": COMMIT,
                   "containerfile": "Containerfile",
                   "containerfile_digest": "sha256:" + "c" * 64},
        "base": {"reference": f"{HOST}/f25/base:25", "digest": BASE_DIGEST},
        "source_date_epoch": 1700000000, "network": "host",
        "builder": {"name": "strata", "version": version},
        "inputs": {"commit": COMMIT, "context": "", "containerfile": "Containerfile",
                   "build_args": {"FLAVOUR": "small"}, "target": None, "network": "host",
                   "compression": "gzip", "source_date_epoch": 1700000000,
                   "images": {"f25/base:25": BASE_DIGEST}},
        "packages": [{"name": p.name, "version": p.version, "arch": p.arch, "type": "rpm"}
                     for p in PACKAGES],
    }
    body = json.dumps(record).encode()
    subject = {"mediaType": mt.OCI_MANIFEST, "digest": digest, "size": image.size}
    manifest = record_manifest(body, subject)
    for blob in (EMPTY_JSON, body):
        upload = await registry.uploads.start(repo)
        await registry.uploads.finish(repo, upload.id, Digest.parse(sha256(blob)), _once(blob))
    await registry.manifests.put(repo, ManifestRef(digest=Digest.parse(sha256(manifest))),
                                 manifest, mt.OCI_MANIFEST)
    return sha256(manifest)


async def _referrers(registry: Registry, digest: str,
                     artifact_type: str | None = None) -> list[dict[str, str]]:
    page = await registry.discovery.referrers(RepositoryName.parse(REPO), Digest.parse(digest),
                                              artifact_type)
    return list(page.index["manifests"])


async def _artifact(registry: Registry, desc: dict[str, str]) -> tuple[dict[str, object], bytes]:
    repo = RepositoryName.parse(REPO)
    rec = await registry.manifests.get(repo, ManifestRef(digest=Digest.parse(desc["digest"])))
    manifest = json.loads(rec.content)
    layer = manifest["layers"][0]
    handle = await registry.blobs.open(repo, Digest.parse(layer["digest"]))
    body = b"".join([c async for c in registry.blobs.stream(handle, 0, handle.size)])
    return manifest, body


async def test_release_attaches_sbom_and_provenance_read_by_standard_parsers(
        engine: ReleaseEngine, registry: Registry, db: sa.Engine, trust: TrustService) -> None:
    await _setup(engine)
    digest = await _candidate(engine, registry, db)
    await engine.oob([f"{REPO}@{digest}"], advisories=["A-1"], reason="test", actor="releng")

    sboms = await _referrers(registry, digest, SBOM_ARTIFACT_TYPE)
    provs = await _referrers(registry, digest, PROVENANCE_ARTIFACT_TYPE)
    assert len(sboms) == 1 and len(provs) == 1
    assert sboms[0]["artifactType"] == "application/vnd.cyclonedx+json"
    assert provs[0]["artifactType"] == "application/vnd.in-toto+json"
    (key,) = await trust.keys("f25")
    for artifact in (sboms[0]["digest"], provs[0]["digest"]):  # signed like the image
        sigs = await signatures(registry, REPO, artifact)
        assert len(sigs) == 1 and valid(sigs[0], key.public_pem, REPO, artifact)

    manifest, body = await _artifact(registry, sboms[0])
    assert manifest["subject"]["digest"] == digest  # type: ignore[index]
    assert validate_sbom(body) is None
    from cyclonedx.model.bom import Bom

    bom = Bom.from_json(json.loads(body))  # type: ignore[attr-defined]
    assert bom.metadata.component.name == f"{HOST}/{REPO}"
    purls = sorted(str(c.purl) for c in bom.components if c.purl is not None)
    assert purls == ["pkg:rpm/bash@5.2.15-3.fc25?arch=x86_64",
                     "pkg:rpm/glibc@2.36-9.fc25?arch=x86_64"]
    image = json.loads((await registry.manifests.get(
        RepositoryName.parse(REPO), ManifestRef(digest=Digest.parse(digest)))).content)
    layer_hashes = {h.content for c in bom.components for h in c.hashes if c.purl is None}
    assert layer_hashes == {item["digest"].removeprefix("sha256:") for item in image["layers"]}

    manifest, body = await _artifact(registry, provs[0])
    assert manifest["subject"]["digest"] == digest  # type: ignore[index]
    from google.protobuf import json_format
    from in_toto_attestation.v1 import statement_pb2
    from in_toto_attestation.v1.statement import Statement

    statement = json_format.Parse(body.decode(), statement_pb2.Statement())
    Statement.copy_from_pb(statement).validate()
    assert statement.predicate_type == "https://slsa.dev/provenance/v1"
    assert statement.subject[0].digest["sha256"] == digest.removeprefix("sha256:")
    prov = parse_provenance(body)
    assert prov.subjects == ((f"{HOST}/{REPO}", digest),)
    assert (prov.source_url, prov.source_commit) == ("https://git.example/x.git", COMMIT)
    assert prov.base_digest == BASE_DIGEST
    assert prov.containerfile_digest == "sha256:" + "c" * 64
    assert prov.network == "host" and prov.build_args == {"FLAVOUR": "small"}
    assert prov.builder_version == "9.9.9"
    assert prov.images == {"f25/base:25": BASE_DIGEST}


async def _provenance_of(registry: Registry, digest: str) -> dict[str, object]:
    (found,) = await _referrers(registry, digest, PROVENANCE_ARTIFACT_TYPE)
    _, body = await _artifact(registry, found)
    statement: dict[str, object] = json.loads(body)
    return statement


@pytest.mark.parametrize("named", ["first", "last"])
async def test_provenance_names_the_build_record_the_candidate_names(
        engine: ReleaseEngine, registry: Registry, db: sa.Engine, named: str) -> None:
    """An image with two build records (built twice, pushed by two builds): the provenance
    is made from the one its registration named, whichever sorts first among the
    referrers."""
    await _setup(engine)
    digest = await push_build(registry, REPO, "1.0", "1.f25docker")
    records = {await _push_record(registry, digest, version): version
               for version in ("1.0.0", "2.0.0")}
    assert len(await _referrers(registry, digest, RECORD_ARTIFACT_TYPE)) == 2
    chosen = sorted(records)[0 if named == "first" else -1]
    await RebuildStore(Database(db)).record_inputs(REPO, digest, BuildInputs(
        source_url="https://git.example/x.git", source_commit=COMMIT, packages=PACKAGES,
        record_digest=chosen))
    await engine.inventory.add_candidate(REPO, digest, actor="maint")
    await engine.oob([f"{REPO}@{digest}"], advisories=["A-1"], reason="test", actor="releng")
    statement = await _provenance_of(registry, digest)
    prov = parse_provenance(json.dumps(statement).encode())
    assert prov.builder_version == records[chosen]
    internal = statement["predicate"]["buildDefinition"]["internalParameters"]  # type: ignore[index]
    assert internal["buildRecord"] == chosen


async def test_two_build_records_none_named_provenance_names_none(
        engine: ReleaseEngine, registry: Registry, db: sa.Engine) -> None:
    """A build registered without naming its record, with two records: nothing says which
    one it made, so the provenance takes neither (no record fields, no ``buildRecord``)."""
    await _setup(engine)
    digest = await _candidate(engine, registry, db)  # one record, registered without naming it
    await _push_record(registry, digest, "2.0.0")
    await engine.oob([f"{REPO}@{digest}"], advisories=["A-1"], reason="test", actor="releng")
    statement = await _provenance_of(registry, digest)
    prov = parse_provenance(json.dumps(statement).encode())
    assert prov.builder_version is None and prov.containerfile is None
    assert prov.source_commit == COMMIT  # the registration's inputs still
    internal = statement["predicate"]["buildDefinition"]["internalParameters"]  # type: ignore[index]
    assert "buildRecord" not in internal


async def test_a_named_record_of_another_image_is_not_used(
        engine: ReleaseEngine, registry: Registry, db: sa.Engine) -> None:
    """A registration naming a build record whose subject is another image: not trusted."""
    await _setup(engine)
    other = await push_build(registry, REPO, "0.9", "1.f25docker")
    foreign = await _push_record(registry, other)
    digest = await push_build(registry, REPO, "1.0", "1.f25docker")
    await _push_record(registry, digest, "2.0.0")
    await RebuildStore(Database(db)).record_inputs(REPO, digest, BuildInputs(
        source_commit=COMMIT, packages=PACKAGES, record_digest=foreign))
    await engine.inventory.add_candidate(REPO, digest, actor="maint")
    await engine.oob([f"{REPO}@{digest}"], advisories=["A-1"], reason="test", actor="releng")
    prov = parse_provenance(json.dumps(await _provenance_of(registry, digest)).encode())
    assert prov.builder_version is None


async def test_attaching_again_is_idempotent(engine: ReleaseEngine, registry: Registry,
                                             db: sa.Engine, attestations: Attestations) -> None:
    await _setup(engine)
    digest = await _candidate(engine, registry, db)
    release = await engine.oob([f"{REPO}@{digest}"], advisories=["A-1"], reason="test",
                               actor="releng")
    before = await _referrers(registry, digest)
    builds = (await engine.release(release.name)).builds
    again = await attestations.attach(engine.store, release, builds)
    assert sorted([again[0].sbom, again[0].provenance]) == sorted(
        d["digest"] for d in before
        if d["artifactType"] in (SBOM_ARTIFACT_TYPE, PROVENANCE_ARTIFACT_TYPE))
    assert await _referrers(registry, digest) == before


async def test_nothing_for_an_unpublished_digest(engine: ReleaseEngine, registry: Registry,
                                                 db: sa.Engine,
                                                 attestations: Attestations) -> None:
    """A pending candidate gets no SBOM or provenance, even when the hook is called with a
    release that did not publish it; a scheduled release publishing another build leaves it
    without too."""
    await _setup(engine)
    digest = await _candidate(engine, registry, db)
    pending = (await engine.inventory.candidates(namespace="f25"))[0]
    fake = Release("f25-fake", ReleaseKind.OOB, "f25", None, ReleaseStatus.PUBLISHED,
                   0.0, 0.0, "x", (), None)
    with pytest.raises(ReleaseError, match="was not published"):
        await attestations.attach(engine.store, fake, [pending])
    await engine.inventory.withdraw_candidate(f"{REPO}@{digest}", actor="maint",
                                              reason="not this one")
    other = await _candidate(engine, registry, db, release="2")
    await engine.oob([f"{REPO}@{other}"], advisories=["A-1"], reason="test", actor="releng")
    assert len(await _referrers(registry, other, SBOM_ARTIFACT_TYPE)) == 1
    assert await _referrers(registry, digest, SBOM_ARTIFACT_TYPE) == []
    assert await _referrers(registry, digest, PROVENANCE_ARTIFACT_TYPE) == []


def test_provenance_parser_refuses_what_is_not_a_statement() -> None:
    with pytest.raises(ProvenanceError):
        parse_provenance(b'{"_type": "https://in-toto.io/Statement/v1", "subject": []}')
    with pytest.raises(ProvenanceError):
        parse_provenance(b"not json")


async def test_a_scheduled_release_attaches_only_to_what_it_publishes(
        engine: ReleaseEngine, registry: Registry, db: sa.Engine,
        attestations: Attestations) -> None:
    """The scheduled path prepares every pending candidate of the namespace, but stores
    documents only for the builds it publishes; the in-transaction step refuses a build the
    release did not publish even when one was prepared for it."""
    await _setup(engine)
    await engine.inventory.add_image("f25/y", actor="releng", reason="test fixture")
    digest = await _candidate(engine, registry, db)
    other = await push_build(registry, "f25/y", "2.0", "1.f25docker")
    await engine.inventory.add_candidate("f25/y", other, actor="maint")
    await ImageSources(ReviewStore(Database(db)), ()).set_image(  # y is left waiting
        "f25/y", {"status": "retired"}, actor="releng", releng=True)
    release = await engine.publish(namespace="f25", actor="releng")
    assert len(await _referrers(registry, digest, SBOM_ARTIFACT_TYPE)) == 1
    assert len(await _referrers(registry, digest, PROVENANCE_ARTIFACT_TYPE)) == 1
    y = RepositoryName.parse("f25/y")
    page = await registry.discovery.referrers(y, Digest.parse(other), None)
    assert page.index["manifests"] == []  # prepared, not released: nothing stored
    pending = [b for b in await engine.inventory.candidates(namespace="f25")
               if b.digest == other]
    unsigned = Attestations(registry, RebuildStore(Database(db)), host=HOST)
    for one in (attestations, unsigned):  # the image's signer refuses first, then ours
        await one.prepare(pending)

        def go(tx: ReleaseWriter, one: Attestations = one) -> None:
            one.sign(tx, release, pending, 0.0)
        with pytest.raises(ReleaseError, match="is not published by a release"):
            await engine.store.write(go)
    page = await registry.discovery.referrers(y, Digest.parse(other), None)
    assert page.index["manifests"] == []


async def test_a_dirty_checkout_is_recorded_and_not_rebuilt(tmp_path: Path) -> None:
    """A build from a checkout with uncommitted changes says so in its provenance, and
    ``strata verify`` does not pretend to rebuild it from the commit."""
    facts = ImageFacts(
        host=HOST, repository=REPO, digest="sha256:" + "d" * 64, size=10,
        media_type=mt.OCI_MANIFEST, nvr="x-1.0-1.f25docker",
        created=dt.datetime.fromtimestamp(0, dt.UTC), layers=(), packages=(),
        source_url="https://git.example/x.git", source_commit=COMMIT,
        **{**record_fields({"source": {"dirty": True}}), "containerfile": "Containerfile"})
    prov = parse_provenance(make_provenance(facts))
    assert prov.source_dirty and prov.source_commit == COMMIT
    clean = parse_provenance(make_provenance(dataclasses.replace(facts, source_dirty=False)))
    assert not clean.source_dirty
    verifier = Verifier(None, "http://127.0.0.1:1", [], cache_dir=tmp_path)  # type: ignore[arg-type]
    rebuilt, why = await verifier.rebuild(prov)
    assert rebuilt is None and "uncommitted changes" in why


async def test_release_attaches_on_postgresql(postgres: PostgresCluster,
                                              tmp_path: Path) -> None:
    """The same publish on PostgreSQL: both documents stored and signed in the release's
    transaction (row locks and ON CONFLICT there)."""
    engine_pg = create_engine(postgres.create_database(f"sbom_{uuid.uuid4().hex[:12]}"))
    migrate(engine_pg)
    try:
        registry = Registry.build(RegistryStore(Database(engine_pg)),
                                  FilesystemBlobStore(tmp_path / "blobs"),
                                  policy=ReleaseTagPolicy())
        signer = TrustSigner(registry, PASSPHRASE, public_host=HOST)
        attestations = Attestations(registry, RebuildStore(Database(engine_pg)), host=HOST,
                                    signer=signer)
        engine = release_engine(engine_pg, registry, public_host=HOST, signer=attestations)
        await _setup(engine)
        digest = await _candidate(engine, registry, engine_pg)
        await engine.oob([f"{REPO}@{digest}"], advisories=["A-1"], reason="test",
                         actor="releng")
        (key,) = await TrustService(KeyStore(Database(engine_pg)), signer).keys("f25")
        for artifact_type in (SBOM_ARTIFACT_TYPE, PROVENANCE_ARTIFACT_TYPE):
            (found,) = await _referrers(registry, digest, artifact_type)
            _, body = await _artifact(registry, found)
            if artifact_type == SBOM_ARTIFACT_TYPE:
                assert validate_sbom(body) is None
            else:
                assert parse_provenance(body).subjects == ((f"{HOST}/{REPO}", digest),)
            (sig,) = await signatures(registry, REPO, found["digest"])
            assert valid(sig, key.public_pem, REPO, found["digest"])
    finally:
        engine_pg.dispose()
