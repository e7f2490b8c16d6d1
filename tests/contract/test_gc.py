"""Garbage collection over both backends: what goes, what stays, and collections racing
writes that are in the middle of their transactions."""

from __future__ import annotations

import os
import random
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
import sqlalchemy as sa

from strata.meta import schema as t
from strata.meta.gc_store import SqlGarbageStore
from strata.meta.registry_store import RegistryStore
from strata.oci.digest import Digest
from strata.oci.names import RepositoryName
from strata.registry.gc import GarbageCollector
from strata.registry.limits import Limits
from strata.registry.uploads import UploadService
from strata.storage.filesystem import FilesystemBlobStore

from .conftest import Clock
from .helpers import (
    Gate,
    add_blob,
    blob_digest,
    blob_row,
    digest_of,
    gate_statement,
    link_row,
    manifest,
    race,
    sha,
)

GRACE = 3600.0
APP = "lib/app"


@pytest.fixture
def blob_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FilesystemBlobStore:
    monkeypatch.setattr(os, "fsync", lambda fd: None)  # durability is not the subject here
    return FilesystemBlobStore(tmp_path / "data")


@pytest.fixture
def uploads(meta: RegistryStore, blob_store: FilesystemBlobStore, clock: Clock) -> UploadService:
    return UploadService(meta, blob_store, Limits(upload_ttl_seconds=1800), clock=clock)


@pytest.fixture
def collector(garbage: SqlGarbageStore, blob_store: FilesystemBlobStore,
              uploads: UploadService, clock: Clock) -> GarbageCollector:
    return GarbageCollector(garbage, blob_store, uploads, grace_seconds=GRACE, clock=clock)


async def _body(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def upload(uploads: UploadService, repo: str, data: bytes) -> str:
    name = RepositoryName.parse(repo)
    rec = await uploads.start(name)
    digest = sha(data)
    await uploads.finish(name, rec.id, Digest.parse(digest), _body(data), len(data))
    return digest


async def image(meta: RegistryStore, uploads: UploadService, repo: str, seed: str,
                tags: list[str], *, shared: Sequence[str] = (), subject: str | None = None,
                children: list[str] | None = None) -> tuple[str, list[str]]:
    """An image whose blobs are uploaded for real; returns (manifest digest, own blobs)."""
    own = [await upload(uploads, repo, f"{seed} layer".encode()),
           await upload(uploads, repo, f"{seed} config".encode())]
    record, refs = manifest(repo, seed, layers=[*shared, *own], subject=subject,
                            children=children)
    await meta.put_manifest(record, refs, tags)
    return record.digest, own


def blob_file(store: FilesystemBlobStore, digest: str) -> Path:
    return Path(store.blob_path(Digest.parse(digest)))


def on_disk(store: FilesystemBlobStore, digest: str) -> bool:
    return blob_file(store, digest).exists()


async def test_a_collection_removes_garbage_and_keeps_the_rest(
        meta: RegistryStore, uploads: UploadService, blob_store: FilesystemBlobStore,
        collector: GarbageCollector, clock: Clock) -> None:
    # -- old things (before the grace period) -----------------------------------------------
    # Rows get the store's clock, files the real one: the collection runs at the real time,
    # the old things are made an hour and more before it.
    clock.now = time.time() - GRACE - 1000
    base = await upload(uploads, APP, b"shared base layer")
    kept, kept_blobs = await image(meta, uploads, APP, "kept", ["v1"], shared=[base])
    dead, dead_blobs = await image(meta, uploads, APP, "dead", ["doomed"], shared=[base])
    assert await meta.delete_tag(APP, "doomed")
    signature, sig_blobs = await image(meta, uploads, APP, "sig", [], subject=kept)
    dead_sig, dead_sig_blobs = await image(meta, uploads, APP, "dead-sig", [], subject=dead)
    child, child_blobs = await image(meta, uploads, APP, "child", [])
    index, _ = await image(meta, uploads, APP, "index", ["multi"], children=[child])
    stray = await upload(uploads, APP, b"never referenced")
    elsewhere = await upload(uploads, APP, b"also in lib/other")
    assert await upload(uploads, "lib/other", b"also in lib/other") == elsewhere
    other, _ = await image(meta, uploads, "lib/other", "other", ["v1"], shared=[elsewhere])
    orphan = sha(b"orphan file")  # bytes left by a crash, with no row
    path = blob_file(blob_store, orphan)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"orphan file")
    os.utime(path, (clock.now, clock.now))
    stale = await uploads.start(RepositoryName.parse(APP))
    await uploads.append(RepositoryName.parse(APP), stale.id, _body(b"half"))
    # -- recent things ----------------------------------------------------------------------
    clock.now = time.time()
    recent, recent_blobs = await image(meta, uploads, APP, "recent", [])
    recent_stray = await upload(uploads, APP, b"recent stray")

    gone_manifests = {(APP, dead), (APP, dead_sig)}
    gone_blobs = {*dead_blobs, *dead_sig_blobs, stray}
    dry = await collector.collect(dry_run=True)
    assert set(dry.manifests) == gone_manifests
    assert {d for d, _ in dry.blobs} == gone_blobs
    assert await digest_of(meta.get_manifest(APP, dead)) == dead  # a dry run changes nothing
    assert all(on_disk(blob_store, d) for d in gone_blobs)

    report = await collector.collect()
    assert set(report.manifests) == gone_manifests
    assert report.links == len(gone_blobs) + 1  # + lib/app's link to ``elsewhere``
    assert {d for d, _ in report.blobs} == gone_blobs
    assert dict(report.blobs)[stray] == len(b"never referenced")
    assert report.orphan_files == [(orphan, len(b"orphan file"))]
    assert report.uploads == 1
    for digest in (dead, dead_sig):
        assert await meta.get_manifest(APP, digest) is None
    for digest in (kept, signature, child, index, recent):
        assert await digest_of(meta.get_manifest(APP, digest)) == digest
    assert await digest_of(meta.get_manifest("lib/other", other)) == other
    for digest in gone_blobs:
        assert await meta.blob_size(APP, digest) is None
        assert not on_disk(blob_store, digest)
    for digest in [base, *kept_blobs, *sig_blobs, *child_blobs, *recent_blobs, recent_stray]:
        assert await meta.blob_size(APP, digest) is not None, digest
        assert on_disk(blob_store, digest)
    assert await meta.blob_size(APP, elsewhere) is None  # unlinked here ...
    assert await meta.blob_size("lib/other", elsewhere) is not None  # ... still used there
    assert on_disk(blob_store, elsewhere)
    assert not path.exists()
    assert await meta.get_upload(stale.id) is None
    assert [r.digest for r in await meta.referrers(APP, kept)] == [signature]

    again = await collector.collect()
    assert (again.manifests, again.links, again.blobs, again.orphan_files) == ([], 0, [], [])


# -- collections racing writes that are inside their transactions ---------------------------
# Each write is held inside its transaction (at a Gate) while the collection step runs; on
# SQLite the step waits for the write lock, on PostgreSQL it must not act on what it read
# before the write commits.

async def test_sweep_keeps_an_old_manifest_being_tagged(
        meta: RegistryStore, garbage: SqlGarbageStore, engine: sa.Engine, clock: Clock) -> None:
    layer = blob_digest("l")
    await add_blob(meta, APP, layer)
    record, refs = manifest(APP, "m", layers=[layer])
    await meta.put_manifest(record, refs, [])  # untagged ...
    clock.advance(GRACE + 10)  # ... and old: garbage, until the push below tags it
    rid = dict((n, i) for i, n in await garbage.repositories())[APP]
    gate = Gate()
    _, sweep = await race(meta.put_manifest(record, refs, ["v1"], check_tag=gate), gate,
                       lambda: garbage.sweep_repository(rid, APP, clock.now - GRACE, False))
    assert sweep.manifests == [] and sweep.links == []
    assert await digest_of(meta.resolve_tag(APP, "v1")) == record.digest
    assert await meta.blob_size(APP, layer) == 10


async def test_blob_sweep_keeps_a_blob_being_uploaded_again(
        meta: RegistryStore, garbage: SqlGarbageStore, engine: sa.Engine, clock: Clock) -> None:
    digest = blob_digest("b")
    await add_blob(meta, APP, digest)
    assert await meta.unlink_blob(APP, digest)  # an old blob nobody links any more
    clock.advance(GRACE + 10)
    removed: list[str] = []
    gate = Gate()
    _, gone = await race(meta.finish_upload("u1", APP, digest, 10, gate, lambda d: None), gate,
                      lambda: garbage.sweep_blobs(clock.now - GRACE, False, removed.append))
    assert gone == [] and removed == []
    assert blob_row(engine, digest) == (10, clock.now)
    assert await meta.blob_size(APP, digest) == 10


async def test_blob_sweep_keeps_a_blob_being_mounted(
        meta: RegistryStore, garbage: SqlGarbageStore, engine: sa.Engine, clock: Clock) -> None:
    digest = blob_digest("b")
    await add_blob(meta, APP, digest)
    clock.advance(GRACE + 10)  # the link into APP is old and unused: it goes, then the blob
    rid = dict((n, i) for i, n in await garbage.repositories())[APP]
    removed: list[str] = []
    cutoff = clock.now - GRACE

    async def collect() -> list[tuple[str, int]]:
        await garbage.sweep_repository(rid, APP, cutoff, False)
        return await garbage.sweep_blobs(cutoff, False, removed.append)

    gate = Gate()
    with gate_statement(engine, "INSERT INTO repository_blobs", gate):
        mounted, gone = await race(meta.mount_blob(APP, "lib/dst", digest), gate, collect)
    # Either the mount linked it first (nothing goes) or the collection took it first (the
    # mount then finds nothing); never a mount that succeeds onto a blob whose row and bytes
    # are gone.
    if mounted is None:
        assert gone == [(digest, 10)] and removed == [digest]
        assert link_row(engine, "lib/dst", digest) is None
    else:
        assert mounted == 10
        assert gone == [] and removed == []
        assert blob_row(engine, digest) is not None
        assert await meta.blob_size("lib/dst", digest) == 10
    assert link_row(engine, APP, digest) is None


async def test_orphan_sweep_keeps_bytes_being_recorded(
        meta: RegistryStore, garbage: SqlGarbageStore, engine: sa.Engine, clock: Clock) -> None:
    digest = blob_digest("new")
    removed: list[str] = []
    gate = Gate()
    _, gone = await race(meta.finish_upload("u1", APP, digest, 10, gate, lambda d: None), gate,
                      lambda: garbage.sweep_orphan_files([(digest, 10)], False, removed.append))
    assert gone == [] and removed == []
    assert await meta.blob_size(APP, digest) == 10


# -- what a sweep finds, against the walk it replaced ----------------------------------------

def _walked_sweep(engine: sa.Engine, name: str, cutoff: float) -> tuple[list[str], list[str]]:
    """The sweep as it was computed in Python before the database walked the graph: every
    manifest, reference, tag and link of the repository read into memory, liveness spread
    until nothing changes. (dead manifests, unused old links), both sorted."""
    with engine.connect() as conn:
        rid = conn.execute(sa.select(t.repositories.c.id).where(
            t.repositories.c.name == name)).scalar_one()
        manifests = {str(d): (s, float(c)) for d, s, c in conn.execute(sa.select(
            t.manifests.c.digest, t.manifests.c.subject, t.manifests.c.created_at).where(
                t.manifests.c.repository_id == rid))}
        children: dict[str, list[str]] = {}
        blobs_of: dict[str, list[str]] = {}
        for parent, child, is_manifest in conn.execute(sa.select(
                t.manifest_references.c.parent, t.manifest_references.c.child,
                t.manifest_references.c.is_manifest).where(
                    t.manifest_references.c.repository_id == rid)):
            (children if is_manifest else blobs_of).setdefault(parent, []).append(child)
        live = {str(d) for d in conn.execute(sa.select(t.tags.c.digest).where(
            t.tags.c.repository_id == rid)).scalars()}
        live |= {str(d) for d in conn.execute(sa.select(t.candidates.c.digest).where(
            t.candidates.c.repository == name,
            t.candidates.c.status.in_(("candidate", "released")))).scalars()}
        live |= {d for d, (_, created) in manifests.items() if created >= cutoff}
        changed = True
        while changed:
            changed = False
            for digest, (subject, _) in manifests.items():
                if digest in live:
                    for child in children.get(digest, ()):
                        if child not in live:
                            live.add(child)
                            changed = True
                elif subject is not None and subject in live:
                    live.add(digest)
                    changed = True
        used = {b for d in manifests if d in live for b in blobs_of.get(d, ())}
        links = [str(d) for d, created, touched in conn.execute(sa.select(
            t.repository_blobs.c.digest, t.repository_blobs.c.created_at,
            t.repository_blobs.c.touched_at).where(t.repository_blobs.c.repository_id == rid))
            if d not in used and max(created, touched) < cutoff]
    return sorted(d for d in manifests if d not in live), sorted(links)


@pytest.mark.parametrize("seed", range(4))
async def test_the_sweep_finds_what_walking_the_graph_finds(
        meta: RegistryStore, garbage: SqlGarbageStore, engine: sa.Engine, clock: Clock,
        seed: int) -> None:
    """Random repositories of images, indexes, referrers (of referrers, of index children),
    tags, release candidates of every status and ages on both sides of the cutoff: the
    sweep's dead manifests and unused links are exactly those of the in-memory walk, and
    chains of any length keep (or lose) everything along them."""
    rng = random.Random(seed)
    name = f"f/app{seed}"
    with engine.begin() as conn:
        conn.execute(sa.insert(t.namespaces).values(name="f", dist_tag="", interval_days=14,
                                                    anchor="2025-06-10", created_at=0.0))
        conn.execute(sa.insert(t.images).values(repository=name, namespace="f", name="app",
                                                status="active", created_at=0.0))
    cutoff = 10_000.0
    clock.now = 1_000.0
    pool = [blob_digest(f"{seed}/{i}") for i in range(12)]
    for digest in pool:
        await add_blob(meta, name, digest)
    made: list[str] = []
    candidates: list[tuple[str, str]] = []
    for i in range(40):
        clock.now = rng.choice([2_000.0 + i, 20_000.0 + i]) if rng.random() < 0.3 else 2_000.0 + i
        kind = rng.random()
        subject = rng.choice(made) if made and kind < 0.35 else None
        children = (rng.sample(made, min(len(made), rng.randint(1, 3)))
                    if made and 0.35 <= kind < 0.5 else None)
        layers = rng.sample(pool, rng.randint(0, 2)) if children is None else []
        record, refs = manifest(name, f"m{i}", layers=layers, children=children,
                                subject=subject)
        tags = [f"t{i}"] if rng.random() < 0.15 else []
        await meta.put_manifest(record, refs, tags)
        made.append(record.digest)
        if rng.random() < 0.1:
            candidates.append((record.digest,
                               rng.choice(["candidate", "released", "withdrawn"])))
    with engine.begin() as conn:
        for n, (digest, status) in enumerate(candidates):
            conn.execute(sa.insert(t.candidates).values(
                repository=name, digest=digest, name="app", version="1", release=str(n),
                status=status, created_at=0.0, created_by="test"))
    clock.now = 30_000.0
    for digest in rng.sample(pool, 3):  # young links: kept whatever uses them
        await add_blob(meta, name, digest)
    dead, links = _walked_sweep(engine, name, cutoff)
    assert dead and len(dead) < len(made)  # the random graph has both sides
    rid = next(r for r, n in await garbage.repositories() if n == name)
    found = await garbage.sweep_repository(rid, name, cutoff, dry_run=True)
    assert (found.manifests, sorted(found.links)) == (dead, links)
    swept = await garbage.sweep_repository(rid, name, cutoff, dry_run=False)
    assert (swept.manifests, sorted(swept.links)) == (dead, links)
    after = await garbage.sweep_repository(rid, name, cutoff, dry_run=True)
    assert (after.manifests, after.links) == ([], [])


async def test_orphan_files_are_judged_in_batches(
        meta: RegistryStore, uploads: UploadService, blob_store: FilesystemBlobStore,
        garbage: SqlGarbageStore, collector: GarbageCollector, clock: Clock,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The walk over the blob files hands the old ones to the orphan sweep a batch at a time:
    every orphan goes, every recorded file stays, no step gets more than a batch."""
    from strata.registry import gc as gc_module
    monkeypatch.setattr(gc_module, "ORPHAN_BATCH", 2)
    steps: list[int] = []
    sweep = garbage.sweep_orphan_files

    async def spy(candidates: list[tuple[str, int]], dry_run: bool,
                  remove: object) -> list[tuple[str, int]]:
        steps.append(len(candidates))
        return await sweep(candidates, dry_run, remove)  # type: ignore[arg-type]
    monkeypatch.setattr(garbage, "sweep_orphan_files", spy)
    clock.now = time.time() - GRACE - 1000
    kept, kept_blobs = await image(meta, uploads, APP, "kept", ["v1"])
    orphans = []
    for i in range(5):
        data = f"orphan {i}".encode()
        path = blob_file(blob_store, sha(data))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.utime(path, (clock.now, clock.now))
        orphans.append((sha(data), len(data)))
    for digest in kept_blobs:
        os.utime(blob_file(blob_store, digest), (clock.now, clock.now))
    clock.now = time.time()
    report = await collector.collect()
    assert sorted(report.orphan_files) == sorted(orphans)
    assert sum(steps) == 7 and max(steps) == 2  # 5 orphans + the image's 2 old files
    assert not any(on_disk(blob_store, d) for d, _ in orphans)
    assert all(on_disk(blob_store, d) for d in kept_blobs)
    assert await digest_of(meta.get_manifest(APP, kept)) == kept
