"""An upload body pumped through three threads: receive, hash, write.

A big body handed over by the event loop in pieces costs the loop a fresh ``bytes`` for every
``recv``, a copy of each piece by the HTTP parser and one more into the file; and the loop,
the hashing thread and the writing thread take turns instead of overlapping. Where the body
can be read straight from the connection (``BlockingBody``, see ``strata.server.rawbody``) and
the store can write from a thread (``BlockingUploadWriter``), it goes instead into a few
reused page-aligned buffers (one kernel copy, into memory that stays mapped) which pass from
the receiving thread to the hashing thread to the writing thread and back: three stages at
once, none on the event loop. On this VM kind a 256 MiB push written with ``O_DIRECT`` went from
~480 to ~900 MiB/s this way (issue #18).

The rules are those of the streamed path: at most ``limit`` bytes, exactly ``expected`` of
them, and a failure anywhere leaves the upload at the offset it had (the writer drops what it
wrote).
"""

from __future__ import annotations

import asyncio
import contextlib
import mmap
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from strata.errors import Code, RegistryError
from strata.storage.base import UploadWriter

BUFFER = 2 << 20
_HASH_SLICE = 64 << 10
#: 4 MiB per body in flight: one receiving while the other is hashed and written. A third
#: (6 MiB) let the receiver run ahead: 256 MiB monolithic pushes with ``--direct-io`` ran
#: 2-6% faster with it, chunked ones 2-6% slower (``bench/run.py``, A/B, 4 rounds each,
#: session 11); the pushing worker's peak PSS is 2 MiB lower without it (issue #18).
BUFFERS = 2


class BufferPool:
    """Page-aligned buffers kept from one body to the next: a fresh mapping's pages are
    faulted in on first touch, which on this VM kind costs about as much as the copy into them
    (16 MiB PATCHes gained ~10% from warm buffers). Keeps one body's worth (``BUFFERS`` of
    ``BUFFER`` bytes, 4 MiB) while bodies keep coming; more bodies at once get fresh buffers,
    freed after use, and ``trim_if_idle`` frees the kept ones once no body came for a while
    (an idle worker holds none)."""

    def __init__(self, keep: int = BUFFERS) -> None:
        self._keep = keep
        self._free: list[mmap.mmap] = []
        self._lock = threading.Lock()
        self._used = 0.0

    @property
    def kept(self) -> int:
        return len(self._free)

    def take(self, n: int) -> list[mmap.mmap]:
        with self._lock:
            got, self._free = self._free[:n], self._free[n:]
        return got + [mmap.mmap(-1, BUFFER) for _ in range(n - len(got))]

    def give(self, buffers: list[mmap.mmap]) -> None:
        with self._lock:
            self._used = time.monotonic()
            room = max(self._keep - len(self._free), 0)
            self._free.extend(buffers[:room])
        _close(buffers[room:])

    def trim_if_idle(self, idle: float) -> None:
        """Free the kept buffers if none was given back for ``idle`` seconds."""
        with self._lock:
            if time.monotonic() - self._used < idle:
                return
            dropped, self._free = self._free, []
        _close(dropped)


def _close(buffers: list[mmap.mmap]) -> None:
    for buf in buffers:
        with contextlib.suppress(BufferError):  # a view still held: unmapped with it
            buf.close()


class BlockingBody(Protocol):
    """A request body read from a thread."""

    @property
    def length(self) -> int:
        """The bytes the body holds (its Content-Length)."""
        ...

    def readinto(self, view: memoryview) -> int:
        """Fill ``view`` with what has arrived (waiting for something); 0 at the end of the
        stream. Raises RegistryError when the client stays silent too long."""
        ...

    def stop(self) -> None:
        """Make a ``readinto`` waiting on another thread give up soon (thread-safe)."""
        ...


@runtime_checkable
class TakeableBody(Protocol):
    """A body arriving on the loop that can be taken as a ``BlockingBody`` instead (None:
    it cannot be, read it on the loop). ``take`` runs on the loop, when the body is about to
    be read."""

    def take(self) -> BlockingBody | None: ...


class _Filled:
    """A received buffer on its way to the hashing and the writing stage."""

    __slots__ = ("_left", "_lock", "buf", "n", "pos")

    def __init__(self, buf: mmap.mmap, n: int, pos: int) -> None:
        self.buf, self.n, self.pos = buf, n, pos
        self._left = 2
        self._lock = threading.Lock()

    def done(self) -> bool:
        """One stage is through with it; True for the last one."""
        with self._lock:
            self._left -= 1
            return self._left == 0


class _Stopped(Exception):
    """Another stage failed: this one ends quietly."""


def pump(body: BlockingBody, hasher: Any, writer: UploadWriter, offset: int,
         limit: int, pool: BufferPool | None = None) -> int:
    """Receive, hash and write ``body`` at ``offset`` (blocking: call it on a thread); the
    bytes received. Raises what the first failing stage raised, after every stage ended."""
    expected = body.length
    if expected > limit:
        raise RegistryError(Code.SIZE_INVALID, "blob exceeds the registry's size limit",
                            status=413)
    pool = pool or BufferPool(keep=0)
    buffers = pool.take(BUFFERS)
    free: queue.SimpleQueue[mmap.mmap | None] = queue.SimpleQueue()
    to_hash: queue.SimpleQueue[_Filled | None] = queue.SimpleQueue()
    to_write: queue.SimpleQueue[_Filled | None] = queue.SimpleQueue()
    for buf in buffers:
        free.put(buf)
    errors: list[BaseException] = []
    failed = threading.Event()

    def fail(exc: BaseException) -> None:
        errors.append(exc)
        failed.set()
        body.stop()
        free.put(None)  # wake the receiver if it waits for a buffer

    def done(item: _Filled) -> None:
        if item.done():  # hashed and written: the receiver may fill it again
            free.put(item.buf)

    def receive() -> None:
        pos, received = offset, 0
        want = writer.first_fill(BUFFER)
        try:
            while received < expected:
                buf = free.get()
                if buf is None or failed.is_set():
                    raise _Stopped
                fill = _fill(body, buf, min(want, expected - received), failed)
                if fill < 0:
                    raise RegistryError(
                        Code.BLOB_UPLOAD_INVALID,
                        f"incomplete request body: received {received - fill - 1} of "
                        f"{expected} bytes")
                item = _Filled(buf, fill, pos)
                to_hash.put(item)
                to_write.put(item)
                pos += fill
                received += fill
                want = BUFFER
        except _Stopped:
            pass
        except BaseException as exc:
            fail(exc)
        finally:
            to_hash.put(None)
            to_write.put(None)

    def digest() -> None:
        try:
            while (item := to_hash.get()) is not None:
                if not failed.is_set():
                    # The hasher takes bytes only: a copy, in slices small enough to come
                    # from (and go back to) the heap, hot in the cache, where a whole buffer's
                    # copy would be a fresh mapping each time.
                    buf, n = item.buf, item.n
                    for start in range(0, n, _HASH_SLICE):
                        hasher.update(buf[start:min(start + _HASH_SLICE, n)])
                done(item)
        except BaseException as exc:
            fail(exc)
            while to_hash.get() is not None:
                pass

    def write() -> None:
        try:
            while (item := to_write.get()) is not None:
                if not failed.is_set():
                    with memoryview(item.buf) as view, view[:item.n] as data:
                        writer.write(data, item.pos)
                done(item)
        except BaseException as exc:
            fail(exc)
            while to_write.get() is not None:
                pass

    # Hashing and writing both read the received buffer, each on its own thread: the body's
    # last buffer costs max(hash, write) after it arrives, not their sum (a PATCH's tail).
    stages = [threading.Thread(target=stage, name=f"upload-{stage.__name__}", daemon=True)
              for stage in (receive, digest)]
    for stage in stages:
        stage.start()
    write()  # on the calling thread
    for stage in stages:
        stage.join()
    pool.give(buffers)
    if errors:
        writer.abort()
        raise errors[0]
    writer.finish()
    return expected


def _fill(body: BlockingBody, buf: mmap.mmap, want: int, failed: threading.Event) -> int:
    """Fill ``buf[:want]`` from ``body``: ``want``, or -1 - (bytes got) if the body ended
    first. Raises _Stopped when another stage failed. Every view of ``buf`` is released on
    the way out, an exception's too (a view alive in a traceback would pin the buffer)."""
    fill = 0
    with memoryview(buf) as view:
        while fill < want:
            with view[fill:want] as part:
                n = body.readinto(part)
            if n == 0:
                return -1 - fill
            fill += n
            if failed.is_set():
                raise _Stopped
    return fill


async def pump_on_thread(body: BlockingBody, hasher: Any,
                         open_writer: Callable[[], UploadWriter], offset: int,
                         limit: int, pool: BufferPool | None = None) -> int:
    """``pump`` on a thread of its own (not the loop's executor, whose few threads the small
    requests' hops need: a body can take minutes), the writer opened there too; if the caller
    is cancelled, the body is stopped and the threads are waited for (no write lands after the
    abort)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[int] = loop.create_future()

    def settle(result: int | None, exc: BaseException | None) -> None:
        if done.done():
            return
        if exc is not None:
            done.set_exception(exc)
        else:
            assert result is not None
            done.set_result(result)

    def run() -> None:
        result: int | None = None
        error: BaseException | None = None
        try:
            writer = open_writer()
            try:
                result = pump(body, hasher, writer, offset, limit, pool)
            finally:
                writer.close()
        except BaseException as exc:  # handed to the awaiting coroutine
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=run, name="upload-write", daemon=True).start()
    try:
        return await asyncio.shield(done)
    except asyncio.CancelledError:
        body.stop()
        await asyncio.wait([done])
        if not done.cancelled():
            done.exception()  # retrieved: the caller is cancelled
        raise
