"""The BlobStore contract: one suite, run on every implementation (the ``blob_store`` fixture).

- ``fs``: :class:`FilesystemBlobStore` in the test's temp dir (a session's owner in an extended
  attribute of its bytes file); ``fs-owner-file``: the same with owner files, as on a
  filesystem without user extended attributes.
- ``s3``: :class:`S3BlobStore` on the session's ``rclone serve s3`` (the ``s3_server`` fixture
  of ``tests/conftest.py``), under a prefix of its own per test (the default part size: the
  multipart mechanics at a small part size are ``test_s3_multipart.py``'s); a missing
  ``rclone`` fails in CI (see the fixture).

What is tested is what the registry's use-cases rely on (``strata.registry.uploads`` and
``strata.registry.gc``): the synchronous methods (``upload_place``, ``persist_placed``,
``remove_now``) are called on a worker thread, as the metadata store calls them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import itertools
import math
import os
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from strata.oci.digest import Digest
from strata.storage.base import BlobStore
from strata.storage.filesystem import FilesystemBlobStore
from support.s3 import RcloneS3

STORES = ["fs", "fs-owner-file", "fs-direct", "s3"]  # fs-direct: strata serve --direct-io
MiB = 1 << 20
SLACK = 2.0  # seconds: stores may keep times to the second (HTTP dates)
_prefixes = itertools.count()


@pytest.fixture(params=STORES)
async def blob_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BlobStore]:
    if request.param.startswith("fs"):
        store = FilesystemBlobStore(tmp_path / "fs", direct_io=request.param == "fs-direct")
        assert store.writes_direct is (request.param == "fs-direct"), "O_DIRECT refused here"
        assert store.owner_xattr, "no user extended attributes here"
        store.owner_xattr = request.param != "fs-owner-file"
        yield store
        return
    from strata.storage.s3 import S3BlobStore, S3Location

    server: RcloneS3 = request.getfixturevalue("s3_server")
    location = dataclasses.replace(S3Location.parse(server.url(f"t{next(_prefixes)}/")),
                                   access_key=server.access_key, secret_key=server.secret_key)
    store = S3BlobStore(location, tmp_path / "spool")
    try:
        yield store
    finally:
        await store.close()


# -- helpers ---------------------------------------------------------------------------------
def new_id() -> str:
    return uuid.uuid4().hex


def digest_of(data: bytes) -> Digest:
    return Digest.parse("sha256:" + hashlib.sha256(data).hexdigest())


async def batches(data: bytes, piece: int = 64 << 10,
                  per_batch: int = 16) -> AsyncIterator[Sequence[bytes]]:
    """``data`` as batches of ``per_batch`` pieces of ``piece`` bytes (as the registry sends)."""
    pieces = [data[i:i + piece] for i in range(0, len(data), piece)]
    for i in range(0, len(pieces), per_batch):
        await asyncio.sleep(0)
        yield pieces[i:i + per_batch]


async def nothing() -> AsyncIterator[Sequence[bytes]]:
    return
    yield  # pragma: no cover - makes this an async generator


class Boom(Exception):
    """The request body failed (a dropped connection, a size limit)."""


async def failing(data: bytes) -> AsyncIterator[Sequence[bytes]]:
    """Sends ``data``, then fails."""
    async for batch in batches(data):
        yield batch
    raise Boom("connection lost")


async def collect(chunks: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in chunks])


async def place(store: BlobStore, upload_id: str, digest: Digest, size: int) -> bool:
    """What finishing an upload does: sync, then place and persist on a worker thread, then
    (after the metadata commit) delete what the placement left of the upload. Whether the
    upload's bytes were moved into place (True, the filesystem's rename) or copied (False,
    S3) is the store's business; a blob stored already always gives False."""
    await store.upload_sync(upload_id, digest, size)
    placed = await asyncio.to_thread(store.upload_place, upload_id, digest)
    await asyncio.to_thread(store.persist_placed, [str(digest)])
    if not placed:
        await store.upload_abort(upload_id)
    return placed


async def store_blob(store: BlobStore, data: bytes, repository: str = "lib/x") -> Digest:
    """Upload ``data`` in one request and place it; its digest."""
    upload_id = new_id()
    await store.upload_start(upload_id, repository)
    assert await store.upload_write(upload_id, 0, batches(data)) == len(data)
    digest = digest_of(data)
    await place(store, upload_id, digest, len(data))
    return digest


async def listed(store: BlobStore) -> dict[Digest, tuple[int, float]]:
    return {digest: (size, mtime) async for digest, size, mtime in store.digests()}


# -- upload sessions -------------------------------------------------------------------------
async def test_a_started_upload_has_its_owner_and_start_time(blob_store: BlobStore) -> None:
    upload_id = new_id()
    before = time.time()
    await blob_store.upload_start(upload_id, "lib/x")
    after = time.time()
    owner = await blob_store.upload_owner(upload_id)
    assert owner is not None
    repository, started = owner
    assert repository == "lib/x"
    assert before - SLACK <= started <= after + SLACK
    assert await blob_store.upload_owner(new_id()) is None


async def test_an_aborted_upload_is_gone(blob_store: BlobStore) -> None:
    upload_id = new_id()
    await blob_store.upload_start(upload_id, "lib/x")
    await blob_store.upload_write(upload_id, 0, batches(b"some bytes"))
    await blob_store.upload_abort(upload_id)
    assert await blob_store.upload_owner(upload_id) is None
    assert upload_id not in await blob_store.uploads_started_before(time.time() + 3600)
    with pytest.raises(FileNotFoundError):  # the registry's "upload data is gone"
        await blob_store.upload_write(upload_id, 10, batches(b"more"))
    await blob_store.upload_abort(new_id())  # an unknown upload: nothing to do, no error


async def test_upload_size_is_what_is_stored_so_far(blob_store: BlobStore) -> None:
    """What idle expiry asks before dropping a session that recorded nothing."""
    upload_id = new_id()
    await blob_store.upload_start(upload_id, "lib/x")
    assert await blob_store.upload_size(upload_id) == 0
    await blob_store.upload_write(upload_id, 0, batches(b"hello "))
    await blob_store.upload_write(upload_id, 6, batches(b"world"))
    assert await blob_store.upload_size(upload_id) == 11
    await blob_store.upload_abort(upload_id)
    assert await blob_store.upload_size(upload_id) is None
    assert await blob_store.upload_size(new_id()) is None


async def test_uploads_started_before_a_cutoff(blob_store: BlobStore) -> None:
    old, new, aborted = new_id(), new_id(), new_id()
    await blob_store.upload_start(old, "lib/x")
    await blob_store.upload_start(aborted, "lib/x")
    await blob_store.upload_abort(aborted)
    await asyncio.sleep(0.05)
    cutoff = time.time()
    # The next start lands in a later second, in case the store keeps whole seconds.
    await asyncio.sleep(math.floor(cutoff) + 1.05 - time.time())
    await blob_store.upload_start(new, "lib/y")
    await blob_store.upload_write(new, 0, batches(b"data"))

    assert set(await blob_store.uploads_started_before(cutoff)) == {old}
    assert set(await blob_store.uploads_started_before(time.time() + 3600)) == {old, new}
    assert await blob_store.uploads_started_before(cutoff - 3600) == []


async def test_chunks_append_and_read_back(blob_store: BlobStore) -> None:
    upload_id = new_id()
    await blob_store.upload_start(upload_id, "lib/x")
    assert await blob_store.upload_write(upload_id, 0, batches(b"hello ")) == 6
    assert await blob_store.upload_write(upload_id, 6, batches(b"world")) == 11
    assert await blob_store.upload_write(upload_id, 11, nothing()) == 11
    assert await collect(blob_store.upload_read(upload_id, 11)) == b"hello world"
    assert await collect(blob_store.upload_read(upload_id, 11, 6)) == b"world"
    assert await collect(blob_store.upload_read(upload_id, 8, 3)) == b"lo wo"
    assert await collect(blob_store.upload_read(upload_id, 6, 6)) == b""


async def test_a_retried_chunk_replaces_the_first_attempt(blob_store: BlobStore) -> None:
    upload_id = new_id()
    await blob_store.upload_start(upload_id, "lib/x")
    await blob_store.upload_write(upload_id, 0, batches(b"first "))
    assert await blob_store.upload_write(upload_id, 6, batches(b"chunk, take one")) == 21
    assert await blob_store.upload_write(upload_id, 6, batches(b"take two")) == 14
    assert await collect(blob_store.upload_read(upload_id, 14)) == b"first take two"
    digest = digest_of(b"first take two")
    await place(blob_store, upload_id, digest, 14)
    assert await collect(blob_store.read(digest)) == b"first take two"


async def test_writing_at_an_offset_drops_everything_after_it(blob_store: BlobStore) -> None:
    upload_id = new_id()
    await blob_store.upload_start(upload_id, "lib/x")
    await blob_store.upload_write(upload_id, 0, batches(b"0123456789"))
    await blob_store.upload_write(upload_id, 10, batches(b"abcdef"))
    # Back into the middle of the first chunk (dropping the second one).
    assert await blob_store.upload_write(upload_id, 4, batches(b"XY")) == 6
    assert await collect(blob_store.upload_read(upload_id, 6)) == b"0123XY"
    # An empty write truncates too (the registry's answer to a short body).
    assert await blob_store.upload_write(upload_id, 5, nothing()) == 5
    assert await collect(blob_store.upload_read(upload_id, 5)) == b"0123X"
    digest = digest_of(b"0123X")
    await place(blob_store, upload_id, digest, 5)
    assert await collect(blob_store.read(digest)) == b"0123X"


async def test_a_failed_request_leaves_the_upload_at_its_offset(blob_store: BlobStore) -> None:
    upload_id = new_id()
    await blob_store.upload_start(upload_id, "lib/x")
    with pytest.raises(Boom):  # the very first chunk
        await blob_store.upload_write(upload_id, 0, failing(os.urandom(MiB)))
    assert await collect(blob_store.upload_read(upload_id, MiB)) == b""
    first = os.urandom(100_000)
    assert await blob_store.upload_write(upload_id, 0, batches(first)) == len(first)
    with pytest.raises(Boom):  # a later one, after 1.5 MiB of it arrived
        await blob_store.upload_write(upload_id, len(first), failing(os.urandom(3 * MiB // 2)))
    assert await collect(blob_store.upload_read(upload_id, 2 * MiB)) == first
    assert await blob_store.upload_owner(upload_id) is not None
    rest = os.urandom(50_000)
    assert await blob_store.upload_write(upload_id, len(first), batches(rest)) == 150_000
    digest = digest_of(first + rest)
    await place(blob_store, upload_id, digest, 150_000)
    assert await collect(blob_store.read(digest)) == first + rest


# -- placing and reading blobs ---------------------------------------------------------------
async def test_a_placed_blob_reads_back_whole_and_in_ranges(blob_store: BlobStore) -> None:
    data = b"The quick brown fox jumps over the lazy dog"
    before = time.time()
    digest = await store_blob(blob_store, data)
    assert await collect(blob_store.read(digest)) == data
    assert await collect(blob_store.read(digest, 0, len(data))) == data
    assert await collect(blob_store.read(digest, 4, 9)) == b"quick"
    assert await collect(blob_store.read(digest, 40)) == b"dog"
    assert await collect(blob_store.read(digest, 0, 1)) == b"T"
    assert await collect(blob_store.read(digest, 7, 7)) == b""
    size, mtime = (await listed(blob_store))[digest]
    assert size == len(data)
    assert before - SLACK <= mtime <= time.time() + SLACK


async def test_placing_ends_the_upload_session(blob_store: BlobStore) -> None:
    upload_id = new_id()
    await blob_store.upload_start(upload_id, "lib/x")
    await blob_store.upload_write(upload_id, 0, batches(b"placed"))
    await place(blob_store, upload_id, digest_of(b"placed"), 6)
    # A finished session is unknown (the registry asks the store about sessions it has no
    # row for), and is not expired later.
    assert await blob_store.upload_owner(upload_id) is None
    assert upload_id not in await blob_store.uploads_started_before(time.time() + 3600)


async def test_a_large_chunked_upload_reads_back_byte_for_byte(blob_store: BlobStore) -> None:
    chunk = 5 * MiB // 2
    data = os.urandom(3 * chunk)
    upload_id = new_id()
    await blob_store.upload_start(upload_id, "lib/x")
    for i in range(3):
        size = await blob_store.upload_write(upload_id, i * chunk,
                                             batches(data[i * chunk:(i + 1) * chunk]))
        assert size == (i + 1) * chunk
    # Resuming the hash reads the stored bytes back, across chunk boundaries.
    stored = hashlib.sha256()
    async for piece in blob_store.upload_read(upload_id, len(data)):
        stored.update(piece)
    digest = digest_of(data)
    assert stored.hexdigest() == digest.encoded
    assert (await collect(blob_store.upload_read(upload_id, chunk + 100, chunk - 100))
            == data[chunk - 100:chunk + 100])

    await place(blob_store, upload_id, digest, len(data))
    assert await collect(blob_store.read(digest)) == data
    assert (await collect(blob_store.read(digest, chunk - 3, 2 * chunk + 3))
            == data[chunk - 3:2 * chunk + 3])
    assert await collect(blob_store.read(digest, len(data) - MiB - 1)) == data[-MiB - 1:]
    assert (await listed(blob_store))[digest][0] == len(data)


async def test_the_empty_blob(blob_store: BlobStore) -> None:
    upload_id = new_id()
    await blob_store.upload_start(upload_id, "lib/x")
    assert await blob_store.upload_write(upload_id, 0, nothing()) == 0
    assert await collect(blob_store.upload_read(upload_id, 0)) == b""
    digest = digest_of(b"")
    await place(blob_store, upload_id, digest, 0)
    assert await collect(blob_store.read(digest)) == b""
    assert await collect(blob_store.read(digest, 0, 0)) == b""
    assert (await listed(blob_store))[digest][0] == 0


async def test_a_copy_collected_between_sync_and_place_is_placed_again(
        blob_store: BlobStore) -> None:
    # upload_sync found the blob stored (or stored it), then a collection removed that copy
    # before the metadata transaction: placing must still leave the blob readable.
    data = b"collected meanwhile" * 1000
    upload_id = new_id()
    await blob_store.upload_start(upload_id, "lib/x")
    await blob_store.upload_write(upload_id, 0, batches(data[:7000]))
    await blob_store.upload_write(upload_id, 7000, batches(data[7000:]))
    digest = digest_of(data)
    await blob_store.upload_sync(upload_id, digest, len(data))
    await asyncio.to_thread(blob_store.remove_now, digest)
    placed = await asyncio.to_thread(blob_store.upload_place, upload_id, digest)
    await asyncio.to_thread(blob_store.persist_placed, [str(digest)])
    if not placed:
        await blob_store.upload_abort(upload_id)
    assert await collect(blob_store.read(digest)) == data


async def test_placing_bytes_already_stored(blob_store: BlobStore) -> None:
    data = b"stored twice"
    digest = await store_blob(blob_store, data)
    upload_id = new_id()
    await blob_store.upload_start(upload_id, "lib/y")
    await blob_store.upload_write(upload_id, 0, batches(data))
    assert await place(blob_store, upload_id, digest, len(data)) is False
    assert await blob_store.upload_owner(upload_id) is None
    assert upload_id not in await blob_store.uploads_started_before(time.time() + 3600)
    assert await collect(blob_store.read(digest)) == data  # the blob is untouched
    assert list(await listed(blob_store)) == [digest]


async def test_digests_lists_every_blob(blob_store: BlobStore) -> None:
    assert await listed(blob_store) == {}
    contents = [b"one", b"two", os.urandom(3000), b""]
    digests = [await store_blob(blob_store, data) for data in contents]
    found = await listed(blob_store)
    assert {d: size for d, (size, _) in found.items()} == {
        d: len(data) for d, data in zip(digests, contents, strict=True)}


async def test_a_removed_blob_is_gone(blob_store: BlobStore) -> None:
    kept = await store_blob(blob_store, b"kept")
    removed = await store_blob(blob_store, b"removed")
    await asyncio.to_thread(blob_store.remove_now, removed)
    with pytest.raises(FileNotFoundError):
        await collect(blob_store.read(removed))
    assert list(await listed(blob_store)) == [kept]
    assert await collect(blob_store.read(kept)) == b"kept"
    await asyncio.to_thread(blob_store.remove_now, removed)  # again: nothing to do


async def test_reading_an_unknown_blob_raises_file_not_found(blob_store: BlobStore) -> None:
    unknown = digest_of(b"never stored")
    with pytest.raises(FileNotFoundError):
        await collect(blob_store.read(unknown))
    with pytest.raises(FileNotFoundError):
        await collect(blob_store.read(unknown, 2, 5))
    with pytest.raises(FileNotFoundError):
        await collect(blob_store.read(unknown, 0, 0))


async def test_persist_placed_accepts_any_placed_digests(blob_store: BlobStore) -> None:
    first = await store_blob(blob_store, b"first")
    second = await store_blob(blob_store, b"second")
    await asyncio.to_thread(blob_store.persist_placed, [str(first), str(second)])
    await asyncio.to_thread(blob_store.persist_placed, [])
