"""Blob uploads: POST/PATCH/PUT/GET/DELETE ``/v2/<name>/blobs/uploads/[<id>]``
(distribution-spec "Pushing blobs": monolithic, single-POST, chunked, mount, status, cancel)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator

from aiohttp import web

from strata.errors import Code, RegistryError
from strata.oci.digest import Digest
from strata.oci.names import RepositoryName
from strata.registry.uploads import ContentRange
from strata.server.gate import UPLOAD_GATE
from strata.server.http import body_chunks, empty, has_body
from strata.server.keys import PRINCIPAL, REGISTRY
from strata.server.rawbody import RequestBody


def _session_headers(repo: RepositoryName, upload_id: str, size: int) -> dict[str, str]:
    return {"Location": f"/v2/{repo}/blobs/uploads/{upload_id}",
            "Range": f"0-{max(size - 1, 0)}", "Docker-Upload-UUID": upload_id}


def _account(request: web.Request) -> str | None:
    """The authenticated account pushing (None: an open registry)."""
    principal = request.get(PRINCIPAL)
    return principal.name if principal is not None else None


@contextlib.contextmanager
def _body(request: web.Request) -> Iterator[AsyncIterator[bytes] | RequestBody]:
    """The request body: one the registry may take and read from the socket on threads
    where the store can write from threads (see ``server.rawbody``), else as it arrives."""
    registry = request.app[REGISTRY]
    idle = registry.limits.body_timeout_seconds
    if not registry.uploads.takes_blocking_bodies:
        yield body_chunks(request, idle)
        return
    body = RequestBody(request, idle)
    try:
        yield body
    finally:
        body.release()


def _created(repo: RepositoryName, digest: Digest) -> web.Response:
    return empty(201, {"Location": f"/v2/{repo}/blobs/{digest}",
                       "Docker-Content-Digest": str(digest)})


async def start_upload(request: web.Request, repo: RepositoryName) -> web.StreamResponse:
    registry = request.app[REGISTRY]
    query = request.query
    mount, source = query.get("mount"), query.get("from")
    if mount is not None:
        digest = Digest.parse(mount)
        # A source we cannot mount from (absent, invalid, lacking the blob) falls back to an
        # upload session (spec: "unable to mount the requested blob, it SHOULD return a 202").
        if (source and RepositoryName.is_valid(source) and await registry.blobs.mount(
                repo, RepositoryName.parse(source), digest) is not None):
            return _created(repo, digest)
    elif "digest" in query:
        digest = Digest.parse(query["digest"])
        with request.app[UPLOAD_GATE].enter(request, _account(request)), \
                _body(request) as body:
            session = await registry.uploads.start(repo)  # ends in this request: not counted
            await registry.uploads.finish(repo, session.id, digest, body,
                                          request.content_length)
        return _created(repo, digest)
    session = await registry.uploads.start(repo, _account(request))
    return empty(202, _session_headers(repo, session.id, 0))


async def patch_upload(request: web.Request, repo: RepositoryName,
                       upload_id: str) -> web.StreamResponse:
    header = request.headers.get("Content-Range")
    content_range = ContentRange.parse(header) if header else None
    with request.app[UPLOAD_GATE].enter(request, _account(request)), _body(request) as body:
        rec = await request.app[REGISTRY].uploads.append(
            repo, upload_id, body, content_range, request.content_length)
    return empty(202, _session_headers(repo, rec.id, rec.size))


async def finish_upload(request: web.Request, repo: RepositoryName,
                        upload_id: str) -> web.StreamResponse:
    text = request.query.get("digest")
    if not text:
        raise RegistryError(Code.DIGEST_INVALID, "the digest query parameter is required")
    digest = Digest.parse(text)
    with request.app[UPLOAD_GATE].enter(request, _account(request)):
        if not has_body(request):
            await request.app[REGISTRY].uploads.finish(repo, upload_id, digest, None,
                                                       request.content_length)
        else:
            with _body(request) as body:
                await request.app[REGISTRY].uploads.finish(repo, upload_id, digest, body,
                                                           request.content_length)
    return _created(repo, digest)


async def upload_status(request: web.Request, repo: RepositoryName,
                        upload_id: str) -> web.StreamResponse:
    rec = await request.app[REGISTRY].uploads.status(repo, upload_id)
    return empty(204, _session_headers(repo, rec.id, rec.size))


async def cancel_upload(request: web.Request, repo: RepositoryName,
                        upload_id: str) -> web.StreamResponse:
    await request.app[REGISTRY].uploads.cancel(repo, upload_id)
    return empty(204)
