"""A big request body read straight from the connection's socket, on threads.

aiohttp hands a body to the event loop in pieces: each ``recv`` makes a fresh ``bytes``, the
HTTP parser copies every piece once more, and the loop runs between the stages of a push. For
a blob body of ``TAKE_FROM`` bytes or more, with a Content-Length, over plain TCP and not
encoded, the handler instead takes the connection over (``SocketBody.take``): what aiohttp
has already buffered is drained, the transport stops reading, and ``readinto`` receives the
rest from a thread (``strata.registry.pump``). The parser never sees those bytes, so the
connection cannot carry another request: it is closed after the response (which says
``Connection: close``; clients open a new one, a small cost beside a body this big). A client
silent for the body's idle limit gets 408, as on the streamed path.
"""

from __future__ import annotations

import os
import select
import socket
import threading
import time
from collections.abc import AsyncIterator

from aiohttp import web

from strata.errors import Code, RegistryError
from strata.server.http import body_chunks

TAKE_FROM = 1 << 20  # smaller bodies stay on the loop: a thread hop would cost more
_POLL_MS = 250  # how often a waiting read looks at its stop flag
TAKEN = web.RequestKey("strata.body_taken", bool)


class SocketBody:
    def __init__(self, request: web.Request, sock: socket.socket, head: bytes, length: int,
                 idle_limit: float) -> None:
        self._request = request
        self._sock = sock
        self._head = memoryview(head)
        self._length = length
        self._idle_limit = idle_limit
        self._stopped = threading.Event()
        self._poller = select.poll()
        self._poller.register(sock, select.POLLIN | select.POLLPRI)

    @classmethod
    def take(cls, request: web.Request, idle_limit: float) -> SocketBody | None:
        """The request's body as a ``SocketBody``, or None where it stays with aiohttp (small,
        chunked, encoded, TLS, already read, or no socket to take). On the loop."""
        length = request.content_length
        if (length is None or length < TAKE_FROM or request.version.major != 1
                or "Transfer-Encoding" in request.headers
                or request.headers.get("Content-Encoding", "identity") != "identity"):
            return None
        transport = request.transport
        content = request.content
        if (transport is None or transport.is_closing()
                or transport.get_extra_info("sslcontext") is not None
                or transport.get_extra_info("ssl_object") is not None
                or content.is_eof() or content.exception() is not None):
            return None
        tsock = transport.get_extra_info("socket")
        if tsock is None or tsock.type != socket.SOCK_STREAM:
            return None
        # What the parser already passed on (a read may make it pass on what it held back
        # while the stream was full); then nothing more reaches the parser.
        parts = []
        while chunk := content.read_nowait(-1):
            parts.append(chunk)
        head = b"".join(parts)
        if len(head) > length:  # cannot be: the parser stops at Content-Length
            raise RegistryError(Code.SIZE_INVALID, "body longer than declared")
        transport.pause_reading()
        request.protocol.close()  # no further request on this connection (nor data parsed)
        request[TAKEN] = True
        sock = socket.socket(fileno=os.dup(tsock.fileno()))  # closing it leaves the connection
        return cls(request, sock, head, length, idle_limit)

    @property
    def length(self) -> int:
        return self._length

    def readinto(self, view: memoryview) -> int:
        if self._head:
            n = min(len(view), len(self._head))
            view[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        last = time.monotonic()
        while not self._stopped.is_set():
            try:
                n = self._sock.recv_into(view, len(view), socket.MSG_DONTWAIT)
            except BlockingIOError:
                pass
            else:
                return n
            if time.monotonic() - last >= self._idle_limit:
                raise RegistryError(
                    Code.BLOB_UPLOAD_INVALID,
                    f"no request body bytes for {self._idle_limit:g} seconds",
                    message="request body timed out", status=408)
            self._poller.poll(_POLL_MS)
        return 0

    def stop(self) -> None:
        self._stopped.set()

    def release(self) -> None:
        """Give the connection back to aiohttp for its close (on the loop, after the body's
        threads ended): the payload ends, so aiohttp does not wait for the rest of it."""
        self._sock.close()
        content = self._request.content
        if not content.is_eof():
            content.feed_eof()
        transport = self._request.transport
        if transport is not None and not transport.is_closing():
            transport.pause_reading()  # feed_eof resumed it; nothing more is read


async def close_after_taken_body(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: a response to a request whose body was taken says
    ``Connection: close`` (the connection is closed after it)."""
    if request.get(TAKEN):
        response.force_close()
        response.headers["Connection"] = "close"  # the headers are made before this hook


class RequestBody:
    """A request's body as it arrives on the loop (an async iterable), which the registry may
    ``take`` instead, once it is about to read it, as a ``SocketBody`` read on threads: a
    request refused before its body is read leaves the connection to aiohttp as usual."""

    def __init__(self, request: web.Request, idle_limit: float) -> None:
        self._request = request
        self._idle_limit = idle_limit
        self._taken: SocketBody | None = None

    def __aiter__(self) -> AsyncIterator[bytes]:
        return body_chunks(self._request, self._idle_limit).__aiter__()

    def take(self) -> SocketBody | None:
        """The body as a ``SocketBody`` (None: read it as an async iterable)."""
        if self._taken is None:
            self._taken = SocketBody.take(self._request, self._idle_limit)
        return self._taken

    def release(self) -> None:
        if self._taken is not None:
            self._taken.release()
