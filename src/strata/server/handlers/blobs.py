"""GET/HEAD/DELETE ``/v2/<name>/blobs/<digest>`` (distribution-spec "Pulling blobs",
"Deleting blobs"). GET sends local blob files from the event loop, with sendfile or, to a
lone reader on this host, copied (:class:`~strata.server.blobfile.BlobFileResponse`);
``Range`` requests answer 206."""

from __future__ import annotations

from aiohttp import web

from strata.errors import Code, RegistryError
from strata.oci.digest import Digest
from strata.oci.names import RepositoryName
from strata.registry.blobs import BlobHandle
from strata.registry.service import Registry
from strata.server.blobfile import (
    blob_response,
    byte_range,
    etag_of,
    not_modified,
    open_blob_file,
)
from strata.server.http import empty
from strata.server.keys import BLOB_SENDS, REGISTRY


def _headers(digest: Digest) -> dict[str, str]:
    return {"Docker-Content-Digest": str(digest), "Content-Type": "application/octet-stream",
            "Accept-Ranges": "bytes", "Cache-Control": "max-age=31536000",
            "ETag": etag_of(str(digest))}


async def get_blob(request: web.Request, repo: RepositoryName,
                   digest: str) -> web.StreamResponse:
    registry = request.app[REGISTRY]
    handle = await registry.blobs.open(repo, Digest.parse(digest))
    headers = _headers(handle.digest)
    if request.method == "HEAD":
        headers["Content-Length"] = str(handle.size)
        return web.Response(status=200, headers=headers)
    if not_modified(request, str(handle.digest)):
        return web.Response(status=304, headers=headers)
    span = byte_range(request, handle.size, str(handle.digest))
    if handle.path is not None:
        try:
            fd = open_blob_file(handle.path)
        except FileNotFoundError:  # removed since the lookup (gc): as if it never was
            raise RegistryError(Code.BLOB_UNKNOWN, {"digest": str(handle.digest)}) from None
        return blob_response(fd, span, headers=headers, sends=request.app.get(BLOB_SENDS))
    return await _stream(request, registry, handle, span, headers)


async def _stream(request: web.Request, registry: Registry, handle: BlobHandle,
                  span: tuple[int, int] | None, headers: dict[str, str]) -> web.StreamResponse:
    """Serve from a store without local files (e.g. S3), honouring a single Range."""
    start, end, status = 0, handle.size, 200
    if span is not None:
        (start, end), status = span, 206
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
