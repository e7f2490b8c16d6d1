"""The /v2/ route table, as data, and the dispatcher that applies it.

aiohttp routes one catch-all; repository names contain slashes, so the table below matches the
rest of the path with regular expressions and answers ``UNSUPPORTED`` (405) for a known path
with a method it does not serve. :func:`check_params` validates what the path names -- the
repository (``NAME_INVALID``), a manifest reference (:func:`parse_reference`), a blob digest
(``DIGEST_INVALID``) -- and runs *before authorization* too (the auth gate calls it), so a
malformed request gets the same 400/404 from every account, admin included; the answer depends
on the syntax only, never on what exists.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from strata.errors import Code, RegistryError
from strata.oci.digest import Digest
from strata.oci.names import ManifestRef, RepositoryName
from strata.server.handlers import blobs, discovery, manifests, uploads
from strata.server.http import json_response
from strata.server.keys import ROUTE

Handler = Callable[..., Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Route:
    pattern: re.Pattern[str]
    methods: dict[str, Handler]


def _r(pattern: str, **methods: Handler) -> Route:
    return Route(re.compile(pattern), {m.upper(): h for m, h in methods.items()})


ROUTES: tuple[Route, ...] = (
    _r(r"^(?P<name>.+)/blobs/uploads/?$", post=uploads.start_upload),
    _r(r"^(?P<name>.+)/blobs/uploads/(?P<upload_id>[^/]+)$",
       patch=uploads.patch_upload, put=uploads.finish_upload, get=uploads.upload_status,
       delete=uploads.cancel_upload),
    _r(r"^(?P<name>.+)/blobs/(?P<digest>[^/]+)$",
       get=blobs.get_blob, head=blobs.get_blob, delete=blobs.delete_blob),
    _r(r"^(?P<name>.+)/manifests/(?P<reference>[^/]+)$",
       get=manifests.get_manifest, head=manifests.get_manifest, put=manifests.put_manifest,
       delete=manifests.delete_manifest),
    _r(r"^(?P<name>.+)/tags/list$", get=discovery.list_tags),
    _r(r"^(?P<name>.+)/referrers/(?P<digest>[^/]+)$", get=discovery.referrers),
)


def parse_reference(method: str, text: str) -> ManifestRef:
    """A manifest reference: for ``PUT`` a tag to write (``TAG_INVALID``) or a digest
    (``DIGEST_INVALID``); for a lookup (``GET``, ``HEAD``, ``DELETE``) one that is neither
    names no manifest (``MANIFEST_UNKNOWN``, 404)."""
    return ManifestRef.parse(text) if method == "PUT" else ManifestRef.lookup(text)


def check_params(method: str, params: dict[str, str]) -> RepositoryName:
    """Validate the names in a matched path (raises the catalogue's error); the repository."""
    repo = RepositoryName.parse(params["name"])
    if "reference" in params:
        parse_reference(method, params["reference"])
    if "digest" in params:
        Digest.parse(params["digest"])
    return repo


async def base(request: web.Request) -> web.StreamResponse:
    return json_response({})


def _unsupported(request: web.Request, allowed: Iterable[str]) -> RegistryError:
    """405 with the ``Allow`` header RFC 9110 requires."""
    return RegistryError(Code.UNSUPPORTED, {"method": request.method},
                         headers={"Allow": ", ".join(allowed)})


async def dispatch(request: web.Request) -> web.StreamResponse:
    tail = request.match_info["tail"]
    if tail in ("", "_catalog"):
        if request.method not in ("GET", "HEAD"):
            raise _unsupported(request, ("GET", "HEAD"))
        request[ROUTE] = "base" if tail == "" else "catalog"
        return await (base(request) if tail == "" else discovery.catalog(request))
    for route in ROUTES:
        m = route.pattern.match(tail)
        if m is None:
            continue
        handler = route.methods.get(request.method)
        if handler is None:
            raise _unsupported(request, route.methods)
        request[ROUTE] = handler.__name__
        params: dict[str, Any] = m.groupdict()
        params["repo"] = check_params(request.method, params)
        del params["name"]
        return await handler(request, **params)
    raise RegistryError(Code.NOT_FOUND, {"path": request.path[:200]})
