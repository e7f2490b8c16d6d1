"""Small helpers shared by the handlers: JSON responses, body reading, common headers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

from aiohttp import web

from strata.errors import Code, RegistryError

API_VERSION_HEADER = "Docker-Distribution-API-Version"
API_VERSION = "registry/2.0"
BODY_CHUNK = 1 << 20


def json_response(data: Any, *, status: int = 200, content_type: str = "application/json",
                  headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(body=json.dumps(data).encode(), status=status,
                        content_type=content_type, headers=headers)


def empty(status: int, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(status=status, headers=headers)


def has_body(request: web.Request) -> bool:
    if request.content_length is not None:
        return request.content_length > 0
    return request.headers.get("Transfer-Encoding", "").lower() == "chunked"


async def body_chunks(request: web.Request, idle_limit: float = 120.0) -> AsyncIterator[bytes]:
    """The request body as it arrives; a client silent for ``idle_limit`` seconds is dropped.

    A body arrives in thousands of pieces, so the idle limit is one timer per body (re-armed
    when it fires early), not a timeout around every read."""
    content = request.content
    loop = asyncio.get_running_loop()
    last = loop.time()
    timer: asyncio.TimerHandle | None = None

    def watchdog() -> None:
        nonlocal timer
        idle = loop.time() - last
        if idle >= idle_limit:
            content.set_exception(RegistryError(
                Code.BLOB_UPLOAD_INVALID, f"no request body bytes for {idle_limit:g} seconds",
                message="request body timed out", status=408))
        else:
            timer = loop.call_later(idle_limit - idle, watchdog)

    timer = loop.call_later(idle_limit, watchdog)
    try:
        while True:
            chunk = await content.readany()  # what has arrived, as received: no copy
            if not chunk:
                return
            last = loop.time()
            yield chunk
    finally:
        if timer is not None:
            timer.cancel()


async def read_limited(request: web.Request, limit: int) -> bytes:
    """Read the whole body, refusing more than ``limit`` bytes with 413 SIZE_INVALID."""
    if request.content_length is not None and request.content_length > limit:
        raise RegistryError(Code.SIZE_INVALID, f"body exceeds {limit} bytes", status=413)
    parts: list[bytes] = []
    total = 0
    async for chunk in request.content.iter_chunked(BODY_CHUNK):
        total += len(chunk)
        if total > limit:
            raise RegistryError(Code.SIZE_INVALID, f"body exceeds {limit} bytes", status=413)
        parts.append(chunk)
    return b"".join(parts)


def content_length(request: web.Request) -> int | None:
    return request.content_length
