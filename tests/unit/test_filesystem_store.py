"""FilesystemBlobStore's upload writes: batches of pieces, interrupted bodies, write-back; its
per-blob paths intern nothing."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import random
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from strata.oci.digest import Digest
from strata.storage import direct, filesystem
from strata.storage.base import UploadBusy
from strata.storage.filesystem import FilesystemBlobStore
from support.syncs import record_syncs


async def batches(*groups: Sequence[bytes]) -> AsyncIterator[Sequence[bytes]]:
    for group in groups:
        yield group


async def test_a_batch_of_more_pieces_than_writev_takes(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    await store.upload_start("u1", "r/x")
    pieces = [bytes([i % 251]) * 7 for i in range(5000)]  # IOV_MAX is 1024 on Linux
    size = await store.upload_write("u1", 0, batches(pieces, [b"tail"]))
    assert size == 5000 * 7 + 4
    assert (tmp_path / "uploads" / "u1").read_bytes() == b"".join(pieces) + b"tail"


async def test_an_interrupted_body_leaves_the_upload_at_its_offset(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    await store.upload_start("u2", "r/x")
    assert await store.upload_write("u2", 0, batches([b"a" * 10])) == 10

    async def broken() -> AsyncIterator[Sequence[bytes]]:
        yield [b"b" * (5 << 20)]  # enough to start a background write-back
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        await store.upload_write("u2", 10, broken())
    assert (tmp_path / "uploads" / "u2").read_bytes() == b"a" * 10
    chunks = [c async for c in store.upload_read("u2", 10, 4)]
    assert b"".join(chunks) == b"a" * 6


async def test_write_back_starts_for_every_byte_of_every_chunk(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The final fsync of a chunked upload should find nothing left to write: each chunk's
    # write-back is started, its tail included (which a chunk shorter than the write-back
    # step would otherwise leave for that fsync). Bodies under 1 MiB are left to the fsync.
    started: list[tuple[int, int]] = []
    monkeypatch.setattr(filesystem, "_START_WRITEBACK",
                        lambda fd, offset, n: started.append((offset, offset + n)))
    store = FilesystemBlobStore(tmp_path, direct_io=False)  # the page-cache path
    await store.upload_start("u3", "r/x")
    mib = 1 << 20
    size = 0
    for chunk in ([b"a" * mib] * 5, [b"b" * mib, b"b" * 100], [b"c" * mib] * 3):
        size = await store.upload_write("u3", size, batches(*[[piece] for piece in chunk]))
    assert size == 9 * mib + 100
    await asyncio.get_running_loop().shutdown_default_executor()  # the write-back jobs end
    assert _covered(started) == [(0, size)]


def _covered(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


# -- O_DIRECT (strata.storage.direct) ------------------------------------------------------------
def _pieces(data: bytes, piece: int) -> list[bytes]:
    return [data[i:i + piece] for i in range(0, len(data), piece)]


def _direct_opens(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    opened: list[int] = []
    real = direct.DirectWriter.open

    def spy(path: Path, fd: int, pos: int) -> direct.DirectWriter:
        opened.append(pos)
        return real(path, fd, pos)

    monkeypatch.setattr(direct.DirectWriter, "open", staticmethod(spy))
    return opened


@pytest.mark.parametrize("piece", [65537, 1 << 20, 3 << 20])
async def test_direct_writes_store_every_byte_at_unaligned_offsets(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, piece: int) -> None:
    if not direct.supported(tmp_path):
        pytest.skip("the test's filesystem refuses O_DIRECT")
    opened = _direct_opens(monkeypatch)
    store = FilesystemBlobStore(tmp_path, direct_io=True)
    await store.upload_start("d1", "r/x")
    mib = 1 << 20
    # chunk sizes that leave every kind of boundary: unaligned starts and ends, a body
    # under DIRECT_FROM between big ones, one ending on a buffer boundary
    sizes = [5 * mib + 123, 3 * mib - 7, 100, 2 * mib, 4 * mib + 1, 8 * mib]
    blob = random.Random(piece).randbytes(sum(sizes))
    size = 0
    for n in sizes:
        chunk = blob[size:size + n]
        groups = [_pieces(chunk, piece)[i:i + 2] for i in range(0, len(_pieces(chunk, piece)), 2)]
        size = await store.upload_write("d1", size, batches(*groups))
    assert size == len(blob)
    assert (tmp_path / "uploads" / "d1").read_bytes() == blob
    # every body of DIRECT_FROM bytes or more went through O_DIRECT, the 100-byte one did not
    assert len(opened) == 5
    assert 0 < len(direct._free) <= direct._KEEP  # the buffers went back to the pool


async def test_an_interrupted_direct_body_leaves_the_upload_at_its_offset(
        tmp_path: Path) -> None:
    if not direct.supported(tmp_path):
        pytest.skip("the test's filesystem refuses O_DIRECT")
    store = FilesystemBlobStore(tmp_path, direct_io=True)
    assert store._direct
    await store.upload_start("d2", "r/x")
    start = b"s" * (3 * (1 << 20) + 5)
    assert await store.upload_write("d2", 0, batches([start])) == len(start)

    async def broken() -> AsyncIterator[Sequence[bytes]]:
        for _ in range(9):  # several buffers: a direct write is in flight when it breaks
            yield [b"b" * (1 << 20)]
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        await store.upload_write("d2", len(start), broken())
    assert (tmp_path / "uploads" / "d2").read_bytes() == start
    assert await store.upload_write("d2", len(start), batches([b"e" * 10])) == len(start) + 10
    assert (tmp_path / "uploads" / "d2").read_bytes() == start + b"e" * 10


# -- one file per session ------------------------------------------------------------------------
async def place(store: FilesystemBlobStore, upload_id: str, data: bytes) -> Path:
    digest = Digest.parse("sha256:" + hashlib.sha256(data).hexdigest())
    await store.upload_sync(upload_id, digest, len(data))
    assert store.upload_place(upload_id, digest)
    store.persist_placed([str(digest)])
    return blob_file(store, digest)


def blob_file(store: FilesystemBlobStore, digest: Digest) -> Path:
    return Path(store.blob_path(digest))


async def test_a_session_is_one_file_that_becomes_the_blob(tmp_path: Path) -> None:
    # Creating an inode is the dear part of a small push on ext4: a session is the one file
    # that is renamed into place, its owner in an extended attribute (no owner file created
    # by the POST and deleted by the PUT).
    store = FilesystemBlobStore(tmp_path)
    await store.upload_start("s1", "r/x")
    uploads = tmp_path / "uploads"
    assert [p.name for p in uploads.iterdir()] == ["s1"]
    inode = (uploads / "s1").stat().st_ino
    assert os.getxattr(uploads / "s1", "user.strata.owner") == b"r/x"
    owner = await store.upload_owner("s1")
    assert owner is not None and owner[0] == "r/x"
    assert await store.upload_size("s1") == 0
    assert await store.upload_write("s1", 0, batches([b"blob bytes"])) == 10
    blob = await place(store, "s1", b"blob bytes")
    assert blob.stat().st_ino == inode
    assert blob.read_bytes() == b"blob bytes"
    assert os.listxattr(blob) == []  # the blob keeps no trace of its upload
    assert list(uploads.iterdir()) == []
    assert await store.upload_owner("s1") is None


async def test_a_filesystem_without_user_xattrs_gets_owner_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> None:
        raise OSError(errno.EOPNOTSUPP, "Operation not supported")

    monkeypatch.setattr(filesystem.os, "setxattr", refuse)
    store = FilesystemBlobStore(tmp_path)
    await store.upload_start("s1", "r/x")
    assert not store.owner_xattr
    await store.upload_start("s2", "r/y")
    uploads = tmp_path / "uploads"
    assert sorted(p.name for p in uploads.iterdir()) == ["s1", "s1.owner", "s2.owner"]
    for upload_id, repo in (("s1", "r/x"), ("s2", "r/y")):
        owner = await store.upload_owner(upload_id)
        assert owner is not None and owner[0] == repo
        assert await store.upload_size(upload_id) == 0
        assert await store.upload_write(upload_id, 0, batches([repo.encode()])) == 3
        await place(store, upload_id, repo.encode())
    assert list(uploads.iterdir()) == []


async def test_sessions_of_either_layout_continue_and_expire(tmp_path: Path) -> None:
    # A session an older strata started (an owner file, its bytes file made by the first
    # write) goes on under this one, and both kinds are found by expiry.
    old = FilesystemBlobStore(tmp_path)
    old.owner_xattr = False
    await old.upload_start("legacy", "r/old")
    await old.upload_start("legacy-empty", "r/old")
    store = FilesystemBlobStore(tmp_path)
    await store.upload_start("new", "r/new")
    await store.upload_start("new-empty", "r/new")
    assert await store.upload_size("legacy-empty") == 0
    assert await store.upload_write("legacy", 0, batches([b"old "])) == 4
    assert await store.upload_write("legacy", 4, batches([b"bytes"])) == 9
    assert await store.upload_write("new", 0, batches([b"new bytes"])) == 9
    owner = await store.upload_owner("legacy")
    assert owner is not None and owner[0] == "r/old"
    later = time.time() + 3600
    assert sorted(await store.uploads_started_before(later)) == [
        "legacy", "legacy-empty", "new", "new-empty"]
    assert await store.uploads_started_before(time.time() - 3600) == []
    await place(store, "legacy", b"old bytes")
    await place(store, "new", b"new bytes")
    assert sorted(await store.uploads_started_before(later)) == ["legacy-empty", "new-empty"]
    assert await store.upload_owner("legacy") is None
    for upload_id in ("legacy-empty", "new-empty"):
        await store.upload_abort(upload_id)
    assert list((tmp_path / "uploads").iterdir()) == []


async def test_a_gone_session_is_not_created_again_by_a_write(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    await store.upload_start("s1", "r/x")
    await store.upload_abort("s1")
    with pytest.raises(FileNotFoundError):  # the registry's BLOB_UPLOAD_UNKNOWN
        await store.upload_write("s1", 0, batches([b"late"]))
    assert list((tmp_path / "uploads").iterdir()) == []


async def test_every_placed_directory_is_synced(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # Blobs land in directories of their own; their fsyncs run at once (under the write lock),
    # every one of them before the commit, and a failure fails the commit.
    store = FilesystemBlobStore(tmp_path)
    digests = []
    for i in range(6):
        data = f"blob {i}".encode()
        await store.upload_start(f"s{i}", "r/x")
        await store.upload_write(f"s{i}", 0, batches([data]))
        digest = Digest.parse("sha256:" + hashlib.sha256(data).hexdigest())
        await store.upload_sync(f"s{i}", digest, len(data))
        assert store.upload_place(f"s{i}", digest)
        digests.append(digest)
    directories = {str(blob_file(store, d).parent) for d in digests}
    assert len(directories) > 1
    synced = record_syncs(monkeypatch, filesystem)
    store.persist_placed([str(d) for d in digests])
    assert sorted(synced) == sorted(directories)

    def broken(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(filesystem.os, "fsync", broken)
    with pytest.raises(OSError):
        store.persist_placed([str(d) for d in digests])


async def test_blob_and_upload_paths_intern_nothing(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """pathlib interns each component it parses: a store building a Path per blob put every
    digest, upload id and fan-out directory name into the interpreter's interned-strings
    table, whose ~2 MiB array is reallocated as entries come and go (issue #18: heap growth
    in the soak). The store's paths are strings: a push, a read and the listings intern
    nothing, into a fan-out directory that is new as into one that exists."""
    store = FilesystemBlobStore(tmp_path)
    interned: list[str] = []
    real_intern = sys.intern

    def recording(text: str) -> str:
        interned.append(text)
        return real_intern(text)

    monkeypatch.setattr(sys, "intern", recording)
    placed: list[str] = []
    for _ in range(2):  # the second lands in the fan-out directory the first created
        data = os.urandom(64)
        encoded = hashlib.sha256(data).hexdigest()
        while placed and encoded[:2] != placed[0][7:9]:
            data = os.urandom(64)
            encoded = hashlib.sha256(data).hexdigest()
        upload_id = hashlib.sha256(encoded.encode()).hexdigest()[:32]
        digest = Digest.parse(f"sha256:{encoded}")
        await store.upload_start(upload_id, "r/x")
        await store.upload_write(upload_id, 0, batches([data]))
        await store.upload_sync(upload_id, digest, len(data))
        assert store.upload_place(upload_id, digest)
        store.persist_placed([str(digest)])
        assert b"".join([c async for c in store.read(digest)]) == data
        placed.append(f"sha256:{encoded}")
    assert sorted([str(d[0]) async for d in store.digests()]) == sorted(placed)
    await store.uploads_started_before(1e12)
    assert interned == []
    # (a fan-out directory's name, say "e1", may be interned anyway: by any code that has
    # it as a name or a constant, as the full suite's does)
    for text in (encoded, upload_id):
        probe = text[:1] + text[1:]  # an equal string, another object
        assert probe is not text
        assert real_intern(probe) is probe, f"{text} was interned"


async def test_an_upload_has_one_writer_across_processes(tmp_path: Path) -> None:
    # The writer lock is the kernel's (flock on the upload's file), so it holds between the
    # workers of a data dir as between the requests of one: another process holding it
    # makes every write, and the placement, refuse; its end frees them.
    store = FilesystemBlobStore(tmp_path)
    await store.upload_start("u9", "r/x")
    assert await store.upload_write("u9", 0, batches([b"x" * 100])) == 100
    path = tmp_path / "uploads" / "u9"
    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-c",
        "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDONLY); "
        "fcntl.flock(fd, fcntl.LOCK_EX); print('locked', flush=True); sys.stdin.read()",
        str(path), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    assert holder.stdout is not None and holder.stdin is not None
    assert (await asyncio.wait_for(holder.stdout.readline(), 30)).strip() == b"locked"
    digest = Digest.parse("sha256:" + hashlib.sha256(b"x" * 100).hexdigest())
    try:
        with pytest.raises(UploadBusy):
            await store.upload_write("u9", 100, batches([b"y" * 10]))
        with pytest.raises(UploadBusy):
            await asyncio.to_thread(store.upload_writer, "u9", 100)
        with pytest.raises(UploadBusy):
            store.upload_place("u9", digest, 100)
        assert path.stat().st_size == 100  # nothing was truncated or appended
    finally:
        holder.stdin.close()
        await holder.wait()
    assert store.upload_place("u9", digest, 100)
    assert await asyncio.to_thread(Path(store.blob_path(digest)).read_bytes) == b"x" * 100


async def test_a_placement_refuses_an_upload_of_another_size(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    await store.upload_start("u10", "r/x")
    assert await store.upload_write("u10", 0, batches([b"z" * 50])) == 50
    digest = Digest.parse("sha256:" + hashlib.sha256(b"z" * 40).hexdigest())
    with pytest.raises(UploadBusy):  # 50 bytes stored, 40 were hashed
        store.upload_place("u10", digest, 40)
    assert not await asyncio.to_thread(Path(store.blob_path(digest)).exists)
