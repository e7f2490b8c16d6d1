"""Writes racing each other: what a busy registry does all day.

On SQLite writes are serialized (one lock, group commit); on PostgreSQL each write is its own
READ COMMITTED transaction on a thread, so these races really happen there: creating the same
repository, tag, manifest, blob or link at once must neither fail nor lose a write.
"""

from __future__ import annotations

import asyncio
import itertools

import sqlalchemy as sa

from strata.meta import schema as t
from strata.meta.registry_store import RegistryStore

from .helpers import (
    Gate,
    add_blob,
    blob_digest,
    count,
    digest_of,
    manifest,
    race,
    tag_events,
)

N = 8


async def test_same_tag_from_many_pushes_last_writer_wins(meta: RegistryStore,
                                                          engine: sa.Engine) -> None:
    records = [manifest("lib/new", f"m{i}")[0] for i in range(N)]
    await asyncio.gather(*(meta.put_manifest(r, [], ["latest"]) for r in records))
    winner = await digest_of(meta.resolve_tag("lib/new", "latest"))
    history = tag_events(engine, "lib/new", "latest")
    # Every push moved the tag once, each from where the previous one left it: the history
    # is one unbroken chain ending at the digest the tag points to.
    assert len(history) == N
    assert history[0][1] is None
    assert all(prev[2] == cur[1] for prev, cur in itertools.pairwise(history))
    assert history[-1][2] == winner
    assert sorted(e[2] for e in history) == sorted(r.digest for r in records)
    assert await meta.list_repositories(None, None) == ["lib/new"]


async def test_same_manifest_from_many_pushes(meta: RegistryStore, engine: sa.Engine) -> None:
    layers = [blob_digest(str(i)) for i in range(3)]
    for d in layers:
        await add_blob(meta, "lib/x", d)
    record, refs = manifest("lib/x", "m", layers=layers)
    await asyncio.gather(*(meta.put_manifest(record, refs, ["latest", f"t{i}"])
                           for i in range(N)))
    assert count(engine, t.manifests) == 1
    assert count(engine, t.manifest_references) == 3
    tags = await meta.list_tags("lib/x", None, None)
    assert tags == sorted(["latest", *(f"t{i}" for i in range(N))])
    assert tag_events(engine, "lib/x", "latest") == [("latest", None, record.digest)]


async def test_same_blob_finished_into_many_repositories(meta: RegistryStore,
                                                         engine: sa.Engine) -> None:
    digest = blob_digest("shared")
    repos = [f"lib/r{i % 4}" for i in range(N)]  # new repositories, each twice
    await asyncio.gather(*(add_blob(meta, repo, digest, 42, upload_id=f"u{i}")
                           for i, repo in enumerate(repos)))
    assert count(engine, t.blobs) == 1
    assert count(engine, t.repository_blobs) == 4
    assert await meta.list_repositories(None, None) == sorted(set(repos))
    for repo in set(repos):
        assert await meta.blob_size(repo, digest) == 42


async def test_mounts_and_pushes_into_one_new_repository(meta: RegistryStore,
                                                         engine: sa.Engine) -> None:
    digests = [blob_digest(str(i)) for i in range(N)]
    for d in digests:
        await add_blob(meta, "lib/src", d)
    sizes = await asyncio.gather(*(meta.mount_blob("lib/src", "lib/dst", d) for d in digests),
                                 *(meta.mount_blob("lib/src", "lib/dst", digests[0])
                                   for _ in range(3)))
    assert sizes == [10] * (N + 3)
    assert count(engine, t.repository_blobs) == 2 * N
    assert await meta.list_repositories(None, None) == ["lib/dst", "lib/src"]


async def test_many_repositories_at_once(meta: RegistryStore) -> None:
    names = [f"ns{i % 3}/img{i}" for i in range(3 * N)]
    records = [manifest(name, name)[0] for name in names]
    await asyncio.gather(*(meta.put_manifest(r, [], ["v1"]) for r in records))
    assert await meta.list_repositories(None, None) == sorted(names)
    for r in records:
        assert await digest_of(meta.resolve_tag(r.repository, "v1")) == r.digest


async def test_moves_and_deletes_of_one_tag_keep_one_history(meta: RegistryStore,
                                                             engine: sa.Engine) -> None:
    records = [manifest("lib/x", f"m{i}")[0] for i in range(N)]
    for r in records:
        await meta.put_manifest(r, [], [])
    await meta.put_manifest(records[0], [], ["latest"])
    writes = []
    for i, r in enumerate(records[1:]):
        writes.append(meta.put_manifest(r, [], ["latest"]))
        if i % 2:
            writes.append(meta.delete_tag("lib/x", "latest"))
            writes.append(meta.delete_manifest("lib/x", records[i].digest))
    await asyncio.gather(*writes)
    history = tag_events(engine, "lib/x", "latest")
    # Whatever the order the writes committed in, each event starts where the previous one
    # ended, and the last one ends where the tag is.
    assert history[0] == ("latest", None, records[0].digest)
    assert all(prev[2] == cur[1] for prev, cur in itertools.pairwise(history))
    assert history[-1][2] == await digest_of(meta.resolve_tag("lib/x", "latest"))


async def test_deleting_a_manifest_while_a_push_tags_it(meta: RegistryStore) -> None:
    """The push is held inside its transaction while the delete runs: the delete waits, then
    takes the new tag with it; never a tag left pointing at a deleted manifest."""
    record, _ = manifest("lib/x", "m")
    await meta.put_manifest(record, [], ["old"])
    gate = Gate()
    _, deleted = await race(meta.put_manifest(record, [], ["new"], check_tag=gate), gate,
                            lambda: meta.delete_manifest("lib/x", record.digest))
    assert deleted
    assert await meta.get_manifest("lib/x", record.digest) is None
    assert await meta.list_tags("lib/x", None, None) == []
