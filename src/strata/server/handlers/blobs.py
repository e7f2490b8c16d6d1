"""GET/HEAD/DELETE ``/v2/<name>/blobs/<digest>`` (distribution-spec "Pulling blobs",
"Deleting blobs"). GET uses sendfile through ``web.FileResponse`` when blobs are local files;
``Range`` requests answer 206."""

from __future__ import annotations

from aiohttp import hdrs, web

from strata.errors import Code, RegistryError
from strata.oci.digest import Digest
from strata.oci.names import RepositoryName
from strata.registry.blobs import BlobHandle
from strata.registry.service import Registry
from strata.server.http import empty
from strata.server.keys import REGISTRY


def _headers(digest: Digest) -> dict[str, str]:
    return {"Docker-Content-Digest": str(digest), "Content-Type": "application/octet-stream",
            "Accept-Ranges": "bytes", "Cache-Control": "max-age=31536000"}


async def get_blob(request: web.Request, repo: RepositoryName,
                   digest: str) -> web.StreamResponse:
    registry = request.app[REGISTRY]
    handle = await registry.blobs.open(repo, Digest.parse(digest))
    headers = _headers(handle.digest)
    if request.method == "HEAD":
        headers["Content-Length"] = str(handle.size)
        return web.Response(status=200, headers=headers)
    _check_range(request, handle.size)
    if handle.path is not None:
        return web.FileResponse(handle.path, headers=headers)
    return await _stream(request, registry, handle, headers)


def _check_range(request: web.Request, size: int) -> None:
    """Answer a malformed or unsatisfiable ``Range`` with the JSON error (416).

    ``web.FileResponse`` would send an empty 416 of its own, and ``_stream`` cannot parse it.
    """
    if hdrs.RANGE not in request.headers:
        return
    try:
        start = request.http_range.start or 0
    except ValueError:
        start = size
    if start < 0:
        start = max(size + start, 0)
    if start >= size:
        raise RegistryError(Code.RANGE_INVALID, {"range": request.headers[hdrs.RANGE][:100]},
                            headers={"Content-Range": f"bytes */{size}"})


async def _stream(request: web.Request, registry: Registry, handle: BlobHandle,
                  headers: dict[str, str]) -> web.StreamResponse:
    """Serve from a store without local files (e.g. S3), honouring a single Range."""
    start, end, status = 0, handle.size, 200
    rng = request.http_range
    if rng.start is not None or rng.stop is not None:
        start = rng.start or 0
        if start < 0:
            start = max(handle.size + start, 0)
        end = min(rng.stop if rng.stop is not None else handle.size, handle.size)
        if start >= end:
            raise web.HTTPRequestRangeNotSatisfiable(
                headers={"Content-Range": f"bytes */{handle.size}"})
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{handle.size}"
    # The first bytes are fetched before the status line is sent, so a store that is away
    # (StorageUnavailable) is still answered with 503 and Retry-After.
    chunks = aiter(registry.blobs.stream(handle, start, end))
    first = await anext(chunks, b"")
    resp = web.StreamResponse(status=status, headers=headers)
    resp.content_length = end - start
    await resp.prepare(request)
    if first:
        await resp.write(first)
    async for chunk in chunks:
        await resp.write(chunk)
    await resp.write_eof()
    return resp


async def delete_blob(request: web.Request, repo: RepositoryName,
                      digest: str) -> web.StreamResponse:
    await request.app[REGISTRY].blobs.delete(repo, Digest.parse(digest))
    return empty(202)
