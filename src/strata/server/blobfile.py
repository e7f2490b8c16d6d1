"""A blob from a local file, sent with ``sendfile(2)`` (or copied, below) and no thread hop.

``web.FileResponse`` opens and ``stat``s the file on the default executor and closes it there
again: two thread round trips per blob GET. Profiled during the pull storm
(``bench/storm_profile.py``), those hops (``ThreadPoolExecutor.submit`` and the GIL hand-over
that follows) were about a third of a worker's busy time, more than the ``sendfile`` calls
themselves. A blob is a regular file in the data dir whose metadata the kernel has cached (it
was just looked up), so ``open`` + ``fstat`` + ``close`` are a few microseconds each: they run
on the event loop here.

What the client gets is what :class:`web.FileResponse` sent, minus what never applies to a
content-addressed blob: the body goes out with ``loop.sendfile`` (the kernel copies from the
page cache to the socket), ``Content-Length`` is the file's size, a single ``Range`` answers
206 with ``Content-Range`` (the handler decides the range: :func:`byte_range`). The validator
is the digest (``ETag: "sha256:…"``, as distribution sends): a blob never changes, so an
``If-None-Match`` naming it answers 304 and an ``If-Range`` naming another validator gets
the whole blob.

**Copied, not sendfile'd, to a lone local reader** (:class:`BlobSends`). Over loopback the
receiving process copies the bytes out of the very pages the sender queued: with ``sendfile``
those are page-cache pages that no CPU touched lately, so the reader's copy runs from memory;
with ``pread`` + ``send`` of pieces the server's copy has just brought them into the
shared cache. A reader that is itself the limit went faster that way: ``skopeo copy`` of a
256 MiB layer (it hashes and writes what it reads) took 1.22-1.44 s with ``sendfile`` against
distribution's 1.09-1.24 (which copies too), and 1.01-1.11 s copied against 1.07-1.15, while
the server's CPU rose from ~0.11 to ~0.19 s. Under load the server's CPU is what runs out
(the pull storm: same pulls/s, server CPU 15 -> 19 ms per pull and a worse p99 with 200
clients when every GET copied), so only a GET that is the worker's one big send in flight,
to a peer on this host, is copied; every other goes out with ``sendfile``.

The pieces are 1 MiB (:data:`COPY_PIECE`): ``bench/run.py --only get --rounds 5``, three runs
of 1 MiB against 256 KiB pieces side by side, gave the aiohttp client 1.28x, 1.04x and 1.06x
(against distribution 1.24x, 1.01x, 1.03x, where 256 KiB pieces read 0.94-0.97x), curl
1.00-1.04x and skopeo 1.00-1.02x; 64 KiB pieces were slower (aiohttp 0.63x of 256 KiB).
"""

from __future__ import annotations

import asyncio
import os

from aiohttp import hdrs, web
from aiohttp.abc import AbstractStreamWriter

from strata.errors import Code, RegistryError

__all__ = ["COPY_PIECE", "INLINE_MAX", "BlobFileResponse", "BlobSends", "blob_response",
           "byte_range", "etag_of", "not_modified", "open_blob_file"]

_OPEN_FLAGS = os.O_RDONLY | os.O_CLOEXEC
#: Blobs (or ranges) up to this size are read and sent with the headers in one write: the
#: sendfile machinery (pausing the transport, waiting for its buffer, a writer callback) costs
#: more than copying a config blob, and the client gets one packet instead of two.
INLINE_MAX = 64 * 1024
#: A copied body goes out in pieces of this size (read, then sent while still in the cache).
COPY_PIECE = 1024 * 1024


class BlobSends:
    """The big blob bodies a worker is sending now, and how to send the next one: copied
    (``pread`` + ``send``) when it is the only one and its reader is on this host, else with
    ``sendfile`` (module docstring)."""

    def __init__(self) -> None:
        self.active = 0

    def copy_to(self, request: web.BaseRequest) -> bool:
        """Whether a send starting now (already counted in :attr:`active`) is copied."""
        return self.active == 1 and _local_peer(request)


def _local_peer(request: web.BaseRequest) -> bool:
    transport = request.transport
    peer = transport.get_extra_info("peername") if transport is not None else None
    if not isinstance(peer, tuple) or not peer or not isinstance(peer[0], str):
        return False
    host: str = peer[0]
    return host.startswith(("127.", "::ffff:127.")) or host == "::1"


def etag_of(digest: str) -> str:
    return f'"{digest}"'


def _etags(value: str) -> list[str]:
    return [v.strip().removeprefix("W/") for v in value.split(",") if v.strip()]


def not_modified(request: web.Request, digest: str) -> bool:
    """True when ``If-None-Match`` names this blob (or ``*``): the client has it (304)."""
    value = request.headers.get(hdrs.IF_NONE_MATCH)
    if value is None:
        return False
    tags = _etags(value)
    return "*" in tags or etag_of(digest) in tags


def byte_range(request: web.Request, size: int, digest: str) -> tuple[int, int] | None:
    """The ``[start, end)`` a ``Range`` header asks for (one range of bytes), or None for the
    whole blob (no ``Range``, or an ``If-Range`` naming another validator). A malformed or
    unsatisfiable range is ``416 RANGE_INVALID`` with ``Content-Range: bytes */size`` (the
    JSON error: the spec's answer, where ``FileResponse`` sent an empty 416)."""
    header = request.headers.get(hdrs.RANGE)
    if header is None:
        return None
    if_range = request.headers.get(hdrs.IF_RANGE)
    if if_range is not None and if_range.strip() != etag_of(digest):
        return None  # RFC 9110 13.1.5: a validator that does not match: the whole blob
    try:
        rng = request.http_range
        start: int = rng.start or 0
        stop: int | None = rng.stop
    except ValueError:
        start, stop = size, None
    if start < 0:
        start = max(size + start, 0)
    end = min(stop if stop is not None else size, size)
    if start >= size or start >= end:
        raise RegistryError(Code.RANGE_INVALID, {"range": header[:100]},
                            headers={"Content-Range": f"bytes */{size}"})
    return start, end


def open_blob_file(path: str) -> int:
    """A descriptor of the blob file at *path* (``FileNotFoundError`` if it is gone)."""
    return os.open(path, _OPEN_FLAGS)


def blob_response(fd: int, span: tuple[int, int] | None, *, headers: dict[str, str],
                  sends: BlobSends | None = None) -> web.StreamResponse:
    """The answer for the open blob file *fd* (taken over: closed once sent or dropped): up to
    :data:`INLINE_MAX` bytes are read at once and sent with the headers in one write, larger
    ones go out with ``sendfile`` or, as *sends* decides, copied (:class:`BlobFileResponse`)."""
    try:
        size = os.fstat(fd).st_size
        start, end = span if span is not None else (0, size)
        end = min(end, size)
        if end - start > INLINE_MAX:
            return BlobFileResponse(fd, size, start, end, span is not None, headers=headers,
                                    sends=sends)
        body = os.pread(fd, end - start, start) if end > start else b""
    except BaseException:
        os.close(fd)
        raise
    os.close(fd)
    resp = web.Response(body=body, status=206 if span is not None else 200, headers=headers)
    if span is not None:
        resp.headers[hdrs.CONTENT_RANGE] = f"bytes {start}-{end - 1}/{size}"
    return resp


class BlobFileResponse(web.StreamResponse):
    """The bytes ``[start, end)`` of the open blob file *fd* of *size* bytes, sent with
    ``sendfile`` or copied (:class:`BlobSends`); the response owns *fd* and closes it once sent
    (or when dropped unsent).

    The socket is not corked (``TCP_CORK``, nginx's ``tcp_nopush``): on a quiet machine, 256
    MiB GETs with curl went at ~1.8 GB/s corked against ~2.5 GB/s uncorked (bench/run.py
    ``--only get``, four runs each; the gain it was meant for, the headers in the body's first
    segment, is one packet per GET)."""

    def __init__(self, fd: int, size: int, start: int, end: int, partial: bool, *,
                 headers: dict[str, str], sends: BlobSends | None = None) -> None:
        self._fd = fd  # first: __del__ closes it if __init__ fails
        self._sends = sends
        super().__init__(status=206 if partial else 200, headers=headers)
        if partial:
            self.headers[hdrs.CONTENT_RANGE] = f"bytes {start}-{end - 1}/{size}"
        self.content_length = end - start
        self._offset = start
        self._length = end - start

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        if self.prepared:
            return await super().prepare(request)
        transport = request.transport
        try:
            writer = await super().prepare(request)
            if self._length and request.method != "HEAD":
                if transport is None:
                    raise ConnectionResetError("connection lost")
                sends = self._sends
                if sends is None or writer is None:
                    await self._sendfile(transport)
                else:
                    sends.active += 1
                    try:
                        if sends.copy_to(request):
                            await self._copy(writer)
                        else:
                            await self._sendfile(transport)
                    finally:
                        sends.active -= 1
            await super().write_eof()
            return writer
        finally:
            self.close_file()

    async def _sendfile(self, transport: asyncio.Transport) -> None:
        # a file object over the descriptor (no open(2): closefd=False), for sendfile
        with open(self._fd, "rb", buffering=0, closefd=False) as file:  # noqa: ASYNC230
            await asyncio.get_running_loop().sendfile(transport, file, self._offset,
                                                      self._length)

    async def _copy(self, writer: AbstractStreamWriter) -> None:
        offset, end = self._offset, self._offset + self._length
        while offset < end:
            piece = os.pread(self._fd, min(COPY_PIECE, end - offset), offset)
            if not piece:  # a blob file never shrinks; if one did, the answer cannot be whole
                raise ConnectionResetError(f"blob file ended at byte {offset} of {end}")
            offset += len(piece)
            await writer.write(piece)

    def close_file(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def __del__(self) -> None:
        if getattr(self, "_fd", -1) >= 0:
            self.close_file()

