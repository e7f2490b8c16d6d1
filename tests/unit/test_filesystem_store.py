"""FilesystemBlobStore's upload writes: batches of pieces, interrupted bodies, write-back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from strata.storage import filesystem
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
    store = FilesystemBlobStore(tmp_path)
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
