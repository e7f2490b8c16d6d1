"""The one mapping from exceptions to error responses, and the /v2/ response headers."""

from __future__ import annotations

import errno
import logging

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Handler

from strata.errors import Code, RegistryError
from strata.meta.errors import unavailable
from strata.server.http import API_VERSION, API_VERSION_HEADER
from strata.storage.base import StorageUnavailable

log = logging.getLogger("strata.server")
RETRY_AFTER = "5"  # seconds, when a backing service is away (a restart takes a few)
_FULL = {errno.ENOSPC, errno.EDQUOT}


def insufficient_storage(where: str) -> RegistryError:
    """507: the data disk (or the database's) is full. Nothing half-written stays visible; the
    same push succeeds once space is freed (``/healthz`` says "low disk" meanwhile)."""
    return RegistryError(Code.UNAVAILABLE, {"reason": f"no space left ({where})"},
                         message="insufficient storage: the registry's disk is full",
                         status=507, headers={"Retry-After": "60"})


def backend_unavailable(what: str) -> RegistryError:
    return RegistryError(Code.UNAVAILABLE, {"reason": f"{what} unavailable"},
                         message=f"service unavailable: the {what} cannot be reached; "
                                 "retry later", headers={"Retry-After": RETRY_AFTER})


def error_response(err: RegistryError) -> web.Response:
    resp = web.Response(body=err.body(), status=err.status, content_type="application/json",
                        headers=err.headers)
    return resp


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except RegistryError as err:
        return error_response(err)
    except web.HTTPException as exc:
        if exc.status == 404:
            return error_response(RegistryError(Code.NOT_FOUND, {"path": request.path[:200]}))
        if exc.status == 405:
            return error_response(RegistryError(Code.UNSUPPORTED, {"method": request.method}))
        if exc.status == 413:
            return error_response(RegistryError(Code.SIZE_INVALID, "body too large",
                                                status=413))
        raise
    except (aiohttp.ClientPayloadError, ConnectionResetError, aiohttp.http_exceptions.HttpProcessingError) as exc:  # noqa: E501
        log.info("incomplete request body on %s %s: %s", request.method, request.path, exc)
        return error_response(RegistryError(Code.BLOB_UPLOAD_INVALID, "incomplete request body"))
    except StorageUnavailable as exc:
        log.warning("blob store unavailable on %s %s: %s", request.method, request.path, exc)
        return error_response(backend_unavailable("blob store"))
    except OSError as exc:
        if exc.errno in _FULL:
            log.warning("disk full on %s %s: %s", request.method, request.path, exc)
            return error_response(insufficient_storage("data disk"))
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(RegistryError(Code.UNKNOWN))
    except Exception as exc:
        why = unavailable(exc)
        if why == "disk full":
            log.warning("database disk full on %s %s: %s", request.method, request.path, exc)
            return error_response(insufficient_storage("database"))
        if why is not None:
            log.warning("database unavailable on %s %s: %s", request.method, request.path, exc)
            return error_response(backend_unavailable("metadata database"))
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(RegistryError(Code.UNKNOWN))


async def add_api_version(request: web.Request, response: web.StreamResponse) -> None:
    if request.path.startswith("/v2"):
        response.headers[API_VERSION_HEADER] = API_VERSION
