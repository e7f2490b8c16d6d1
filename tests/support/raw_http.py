"""One HTTP request sent byte for byte over a socket.

aiohttp's client normalises request targets (``..``, ``%2e``), which is exactly what the tests
of path tricks must not have happen.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Protocol

from multidict import CIMultiDict


class HasPort(Protocol):
    @property
    def port(self) -> int | None: ...


async def raw_request(client: HasPort, method: str, target: str,
                      headers: Mapping[str, str] | None = None
                      ) -> tuple[int, CIMultiDict[str], bytes]:
    """Send ``method target`` to 127.0.0.1:``client.port``; (status, headers, body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    try:
        writer.write(f"{method} {target} HTTP/1.1\r\nHost: registry\r\nContent-Length: 0\r\n"
                     f"{extra}Connection: close\r\n\r\n".encode())
        await writer.drain()
        data = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parsed: CIMultiDict[str] = CIMultiDict(
        tuple(line.split(": ", 1)) for line in lines[1:])  # type: ignore[misc]
    return int(lines[0].split()[1]), parsed, body
