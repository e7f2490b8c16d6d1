"""The one place the JSON API turns the release engine's errors into the catalogue's answer.

A :class:`strata.release.errors.ReleaseError` becomes the error body of its code (``INVALID``
400, ``NOT_FOUND`` 404, ``CONFLICT`` 409...) with its message and detail; a write that lost a
uniqueness race (:class:`strata.meta.errors.Conflict`) is a ``CONFLICT`` ("try again").
:func:`strata.server.errors.error_middleware` renders the result.
"""

from __future__ import annotations

import functools

from aiohttp import web
from aiohttp.typedefs import Handler

from strata.errors import Code, RegistryError
from strata.meta.errors import Conflict
from strata.release.errors import CONCURRENT_CHANGE, ReleaseError


def as_registry_error(exc: ReleaseError | Conflict) -> RegistryError:
    if isinstance(exc, Conflict):
        return RegistryError(Code.CONFLICT, exc.detail, message=CONCURRENT_CHANGE)
    return RegistryError(exc.code, exc.detail, message=exc.message)


def mapping_errors(handler: Handler) -> Handler:
    """``handler`` with the release engine's errors raised as the catalogue's (every
    /api/v1 route is wrapped so, see :func:`mapped`)."""
    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except (ReleaseError, Conflict) as exc:
            raise as_registry_error(exc) from None
    return wrapped


def mapped(routes: list[web.RouteDef]) -> list[web.RouteDef]:
    """``routes`` with every handler wrapped by :func:`mapping_errors` (each /api/v1 route
    table passes through here)."""
    return [web.route(r.method, r.path, mapping_errors(r.handler), **r.kwargs) for r in routes]
