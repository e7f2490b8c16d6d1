"""``strata.registry.pump``: an upload body received, hashed and written on three threads.

Fake bodies and writers stand in for the socket and the file: the bytes land at the right
offsets, the hash is the body's, and any failure (the writer, the hasher, a body ending
early) is raised after every stage ended, with the writer aborted once."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import random
import threading

import pytest
from rehashes import PySha256

from strata.errors import Code, RegistryError
from strata.registry.pump import BUFFER, pump, pump_on_thread

MIB = 1 << 20


class FakeBody:
    """A body over ``data`` that declares ``length`` bytes (default: all of ``data``); each
    ``readinto`` gives a random number of bytes, 0 once ``data`` is used up or after stop."""

    def __init__(self, data: bytes, length: int | None = None, seed: int = 0) -> None:
        self._data = data
        self._pos = 0
        self._length = len(data) if length is None else length
        self._random = random.Random(seed)
        self.reads = 0
        self.stopped = threading.Event()

    @property
    def length(self) -> int:
        return self._length

    def readinto(self, view: memoryview) -> int:
        self.reads += 1
        if self.stopped.is_set():
            return 0
        left = len(self._data) - self._pos
        n = min(len(view), left, self._random.randint(1, 300_000))
        view[:n] = self._data[self._pos:self._pos + n]
        self._pos += n
        return n

    def stop(self) -> None:
        self.stopped.set()


class StalledBody(FakeBody):
    """Gives ``data`` then waits (as a silent client does) until stopped."""

    def readinto(self, view: memoryview) -> int:
        n = super().readinto(view)
        if n:
            return n
        self.stopped.wait(30)
        return 0


class FakeWriter:
    """Records each write as (pos, bytes); raises ``fail_with`` on write number ``fail_on``."""

    def __init__(self, first: int | None = None, fail_on: int = 0,
                 fail_with: BaseException | None = None) -> None:
        self.first = first
        self.fail_on = fail_on
        self.fail_with = fail_with
        self.writes: list[tuple[int, bytes]] = []
        self.aborts = 0
        self.closed = False
        self.threads: set[str] = set()
        self.written = threading.Event()  # set by the first write

    def first_fill(self, size: int) -> int:
        return size if self.first is None else self.first

    def write(self, data: memoryview, pos: int) -> None:
        self.threads.add(threading.current_thread().name)
        if self.fail_with is not None and len(self.writes) + 1 == self.fail_on:
            raise self.fail_with
        self.writes.append((pos, bytes(data)))
        self.written.set()

    def finish(self) -> int:
        return max((pos + len(data) for pos, data in self.writes), default=0)

    def abort(self) -> None:
        self.aborts += 1

    def close(self) -> None:
        self.closed = True


class FailingHasher:
    """A sha256 whose ``update`` raises on its ``fail_on``-th call."""

    def __init__(self, fail_on: int) -> None:
        self._inner = PySha256()
        self._calls = 0
        self._fail_on = fail_on

    def update(self, data: bytes) -> None:
        self._calls += 1
        if self._calls == self._fail_on:
            raise ValueError("hasher broke")
        self._inner.update(data)


def reassemble(writes: list[tuple[int, bytes]], offset: int) -> bytes:
    """The writes' bytes, checked to follow each other from ``offset`` without gap."""
    pos = offset
    out = bytearray()
    for at, data in writes:
        assert at == pos, (at, pos)
        out += data
        pos += len(data)
    return bytes(out)


def no_stage_left(before: int) -> None:
    assert threading.active_count() == before
    assert not [t for t in threading.enumerate() if t.name.startswith("upload-")]


@pytest.mark.parametrize(("size", "offset"), [
    (1, 0), (BUFFER, 0), (BUFFER + 1, 0), (7 * MIB + 4093, 0), (5 * MIB + 17, 12345)])
def test_the_body_is_written_whole_at_its_offset_and_hashed(size: int, offset: int) -> None:
    data = random.Random(size).randbytes(size)
    body, writer, hasher = FakeBody(data, seed=size), FakeWriter(), PySha256()
    before = threading.active_count()
    assert pump(body, hasher, writer, offset, limit=size) == size
    no_stage_left(before)
    assert reassemble(writer.writes, offset) == data
    assert hasher.finalize() == hashlib.sha256(data).hexdigest()
    assert writer.aborts == 0
    # buffers are filled before they are passed on: all full but the last
    assert all(len(d) == BUFFER for _, d in writer.writes[:-1])
    assert len(writer.writes) == -(-size // BUFFER)
    assert writer.threads == {threading.current_thread().name}  # written on the caller's


def test_first_fill_sets_the_first_buffer() -> None:
    size = 3 * BUFFER
    data = random.Random(1).randbytes(size)
    writer = FakeWriter(first=BUFFER - 100)
    pump(FakeBody(data, seed=1), PySha256(), writer, 100, limit=size)
    sizes = [len(d) for _, d in writer.writes]
    assert sizes == [BUFFER - 100, BUFFER, BUFFER, 100]
    assert [pos for pos, _ in writer.writes] == [100, BUFFER, 2 * BUFFER, 3 * BUFFER]
    assert reassemble(writer.writes, 100) == data


def test_a_first_fill_beyond_the_body_is_cut_to_it() -> None:
    data = b"x" * 1000
    writer = FakeWriter(first=BUFFER - 100)
    pump(FakeBody(data), PySha256(), writer, 0, limit=1000)
    assert writer.writes == [(0, data)]


def test_a_failing_writer_aborts_once_and_raises_its_error() -> None:
    data = random.Random(2).randbytes(6 * BUFFER + 5)
    broken = OSError(28, "No space left on device")
    body, writer = FakeBody(data, seed=2), FakeWriter(fail_on=3, fail_with=broken)
    before = threading.active_count()
    with pytest.raises(OSError) as raised:
        pump(body, PySha256(), writer, 0, limit=len(data))
    assert raised.value is broken
    assert writer.aborts == 1
    assert len(writer.writes) == 2  # nothing written after the failure
    assert body.stopped.is_set()
    no_stage_left(before)


def test_a_body_ending_early_is_incomplete() -> None:
    data = random.Random(3).randbytes(BUFFER + 500)
    body, writer = FakeBody(data, length=3 * BUFFER, seed=3), FakeWriter()
    before = threading.active_count()
    with pytest.raises(RegistryError) as raised:
        pump(body, PySha256(), writer, 0, limit=10 * BUFFER)
    assert raised.value.code is Code.BLOB_UPLOAD_INVALID
    assert f"received {len(data)} of {3 * BUFFER} bytes" in str(raised.value.detail)
    assert writer.aborts == 1
    no_stage_left(before)


def test_a_body_over_the_limit_is_refused_before_reading() -> None:
    body, writer = FakeBody(b"y" * 1001), FakeWriter()
    with pytest.raises(RegistryError) as raised:
        pump(body, PySha256(), writer, 0, limit=1000)
    assert raised.value.code is Code.SIZE_INVALID
    assert raised.value.status == 413
    assert body.reads == 0
    assert writer.writes == []


def test_a_failing_hasher_aborts_and_raises() -> None:
    data = random.Random(4).randbytes(5 * BUFFER)
    body, writer = FakeBody(data, seed=4), FakeWriter()
    before = threading.active_count()
    with pytest.raises(ValueError, match="hasher broke"):
        pump(body, FailingHasher(fail_on=2), writer, 0, limit=len(data))
    assert writer.aborts == 1
    assert len(writer.writes) <= 1  # only the buffer hashed before the failure
    no_stage_left(before)


async def test_a_cancelled_pump_stops_the_body_and_waits_for_its_threads(
        caplog: pytest.LogCaptureFixture) -> None:
    data = random.Random(5).randbytes(BUFFER + 3)
    body, writer = StalledBody(data, length=4 * BUFFER, seed=5), FakeWriter()
    before = set(threading.enumerate())
    task = asyncio.create_task(pump_on_thread(body, PySha256(), lambda: writer, 0,
                                              limit=4 * BUFFER))
    assert await asyncio.to_thread(writer.written.wait, 10)
    assert writer.writes == [(0, data[:BUFFER])]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # by now the pump ended: the body was stopped, the writer aborted and closed
    assert body.stopped.is_set()
    assert writer.aborts == 1
    assert writer.closed
    # no stage left running; new threads are only the loop's (idle) executor workers
    new = set(threading.enumerate()) - before
    assert all(t.name.startswith("asyncio_") for t in new), new
    gc.collect()
    assert "never retrieved" not in caplog.text  # the pump's own error is not left behind
