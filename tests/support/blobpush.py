"""Blob pushes and pulls over plain HTTP (aiohttp), for tests that watch each response: the
fault tests and the S3 multipart tests of a real ``strata serve``."""

from __future__ import annotations

import hashlib
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def code(self) -> str | None:
        """The first error code of a JSON error body, if any."""
        import json

        try:
            return str(json.loads(self.body)["errors"][0]["code"])
        except (ValueError, KeyError, IndexError, TypeError):
            return None


async def answer(resp: aiohttp.ClientResponse) -> Answer:
    return Answer(resp.status, dict(resp.headers), await resp.read())


async def start(http: aiohttp.ClientSession, base: str, repo: str) -> tuple[Answer, str]:
    """POST an upload session: the answer and its Location (a path)."""
    async with http.post(f"{base}/v2/{repo}/blobs/uploads/") as resp:
        got = await answer(resp)
    return got, got.headers.get("Location", "")


async def patch(http: aiohttp.ClientSession, base: str, location: str, data: bytes,
                offset: int | None = None) -> tuple[Answer, str]:
    """One PATCH: a chunk with Content-Range at ``offset``, or (None) a streamed body."""
    headers = {"Content-Type": "application/octet-stream"}
    body: io.BytesIO | AsyncIterator[bytes] = io.BytesIO(data)
    if offset is not None:
        headers["Content-Range"] = f"{offset}-{offset + len(data) - 1}"
    else:
        body = _pieces(data)
    async with http.patch(f"{base}{location}", data=body, headers=headers) as resp:
        got = await answer(resp)
    return got, got.headers.get("Location", location)


async def finish(http: aiohttp.ClientSession, base: str, location: str, digest: str,
                 data: bytes = b"") -> Answer:
    sep = "&" if "?" in location else "?"
    async with http.put(f"{base}{location}{sep}digest={digest}", data=io.BytesIO(data),
                        headers={"Content-Type": "application/octet-stream"}) as resp:
        return await answer(resp)


async def push(http: aiohttp.ClientSession, base: str, repo: str, data: bytes,
               chunk: int | None = None) -> Answer:
    """POST, then PATCHes of ``chunk`` bytes (None: the whole blob in the PUT), then PUT."""
    got, location = await start(http, base, repo)
    if got.status != 202:
        return got
    rest = data
    if chunk is not None:
        for offset in range(0, len(data), chunk):
            got, location = await patch(http, base, location, data[offset:offset + chunk],
                                        offset)
            if got.status != 202:
                return got
        rest = b""
    return await finish(http, base, location, digest_of(data), rest)


async def pull(http: aiohttp.ClientSession, base: str, repo: str, digest: str) -> Answer:
    async with http.get(f"{base}/v2/{repo}/blobs/{digest}") as resp:
        return await answer(resp)


async def _pieces(data: bytes, size: int = 64 << 10) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i:i + size]
