"""A chunked upload whose requests land on different worker processes.

Clients with connection pools spread one upload's PATCHes over several connections, and the
kernel spreads connections over the workers sharing the port. Each recorded chunk saves the
running sha256 with its offset, so the next worker resumes it; here two registries over one data
dir stand for two workers (or nodes). Sessions recorded without a state (before migration 0017)
are hashed from the stored bytes, once per worker at most.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import sqlalchemy as sa

from strata.meta import schema
from strata.meta.connection import create_engine, sqlite_url
from strata.meta.database import Database
from strata.meta.registry_store import RegistryStore
from strata.oci.digest import Digest
from strata.oci.names import RepositoryName
from strata.registry.service import Registry
from strata.registry.uploads import ContentRange
from strata.storage.filesystem import FilesystemBlobStore

CHUNK = 64 * 1024


class CountingStore(FilesystemBlobStore):
    """Counts the upload bytes read back (to resume hashing)."""

    read_back = 0

    async def upload_read(self, upload_id: str, end: int,
                          start: int = 0) -> AsyncIterator[bytes]:
        async for chunk in super().upload_read(upload_id, end, start):
            CountingStore.read_back += len(chunk)
            yield chunk


async def once(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def test_alternating_workers_read_nothing_back(data_dir: Path) -> None:
    engine = create_engine(sqlite_url(data_dir))
    workers = [Registry.build(RegistryStore(Database(engine)), CountingStore(data_dir))
               for _ in range(2)]
    repo = RepositoryName.parse("spread/out")
    chunks = [bytes([i]) * CHUNK for i in range(8)]
    blob = b"".join(chunks)
    CountingStore.read_back = 0
    session = await workers[0].uploads.start(repo)
    for i, chunk in enumerate(chunks):
        rec = await workers[i % 2].uploads.append(
            repo, session.id, once(chunk), ContentRange(i * CHUNK, (i + 1) * CHUNK - 1))
        assert rec.size == (i + 1) * CHUNK
    digest = Digest("sha256", hashlib.sha256(blob).hexdigest())
    assert await workers[1].uploads.finish(repo, session.id, digest) == len(blob)
    # Each worker resumed the hash the other saved: no byte read back.
    assert CountingStore.read_back == 0
    handle = await workers[0].blobs.open(repo, digest)
    assert handle.size == len(blob)
    assert b"".join([c async for c in workers[0].blobs.stream(handle, 0, len(blob))]) == blob
    engine.dispose()


async def test_a_worker_that_never_saw_the_session_resumes_its_hash(data_dir: Path) -> None:
    engine = create_engine(sqlite_url(data_dir))
    first, second = (Registry.build(RegistryStore(Database(engine)), CountingStore(data_dir))
                     for _ in range(2))
    repo = RepositoryName.parse("moved/session")
    session = await first.uploads.start(repo)
    for i in range(4):
        await first.uploads.append(repo, session.id, once(b"x" * CHUNK),
                                   ContentRange(i * CHUNK, (i + 1) * CHUNK - 1))
    CountingStore.read_back = 0
    await second.uploads.append(repo, session.id, once(b"y" * CHUNK),
                                ContentRange(4 * CHUNK, 5 * CHUNK - 1))
    digest = Digest("sha256", hashlib.sha256(b"x" * 4 * CHUNK + b"y" * CHUNK).hexdigest())
    assert await second.uploads.finish(repo, session.id, digest) == 5 * CHUNK
    assert CountingStore.read_back == 0
    engine.dispose()


async def test_a_session_without_a_saved_hash_is_hashed_from_its_bytes_once(
        data_dir: Path) -> None:
    engine = create_engine(sqlite_url(data_dir))
    first, second = (Registry.build(RegistryStore(Database(engine)), CountingStore(data_dir))
                     for _ in range(2))
    repo = RepositoryName.parse("old/session")
    session = await first.uploads.start(repo)
    for i in range(3):
        await first.uploads.append(repo, session.id, once(b"z" * CHUNK),
                                   ContentRange(i * CHUNK, (i + 1) * CHUNK - 1))
    with engine.begin() as conn:  # as a row written before migration 0017 looks
        conn.execute(sa.update(schema.uploads).values(hash_state=None))
    CountingStore.read_back = 0
    digest = Digest("sha256", hashlib.sha256(b"z" * 3 * CHUNK).hexdigest())
    assert await second.uploads.finish(repo, session.id, digest) == 3 * CHUNK
    assert CountingStore.read_back == 3 * CHUNK
    engine.dispose()
