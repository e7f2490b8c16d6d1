"""FilesystemBlobStore's upload writes: batches of pieces, interrupted bodies, write-back."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from strata.storage import direct, filesystem
from strata.storage.filesystem import FilesystemBlobStore


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
