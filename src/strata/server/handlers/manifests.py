"""GET/HEAD/PUT/DELETE ``/v2/<name>/manifests/<reference>`` (distribution-spec "Pulling
manifests", "Pushing manifests", "Deleting tags", "Deleting manifests")."""

from __future__ import annotations

from aiohttp import web

from strata.oci.names import ManifestRef, RepositoryName
from strata.server.http import empty, read_limited
from strata.server.keys import REGISTRY


async def get_manifest(request: web.Request, repo: RepositoryName,
                       reference: str) -> web.StreamResponse:
    record = await request.app[REGISTRY].manifests.get(repo, ManifestRef.lookup(reference))
    headers = {"Docker-Content-Digest": record.digest, "ETag": f'"{record.digest}"',
               "Content-Type": record.media_type}
    if request.method == "HEAD":
        headers["Content-Length"] = str(record.size)
        return web.Response(status=200, headers=headers)
    return web.Response(body=record.content, headers=headers)


async def put_manifest(request: web.Request, repo: RepositoryName,
                       reference: str) -> web.StreamResponse:
    registry = request.app[REGISTRY]
    ref = ManifestRef.parse(reference)
    async with registry.manifests.admit(request.content_length):
        body = await read_limited(request, registry.limits.max_manifest_bytes)
        result = await registry.manifests.put(repo, ref, body,
                                              request.headers.get("Content-Type"),
                                              request.query.getall("tag", []))
    headers = {"Location": f"/v2/{repo}/manifests/{result.digest}",
               "Docker-Content-Digest": str(result.digest)}
    if result.subject:
        headers["OCI-Subject"] = result.subject
    return empty(201, headers)


async def delete_manifest(request: web.Request, repo: RepositoryName,
                          reference: str) -> web.StreamResponse:
    await request.app[REGISTRY].manifests.delete(repo, ManifestRef.lookup(reference))
    return empty(202)
