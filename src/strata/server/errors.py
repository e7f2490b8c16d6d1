"""The one mapping from exceptions to error responses, and the /v2/ response headers."""

from __future__ import annotations

import logging

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Handler

from strata.errors import Code, RegistryError
from strata.server.http import API_VERSION, API_VERSION_HEADER

log = logging.getLogger("strata.server")


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
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(RegistryError(Code.UNKNOWN))


async def add_api_version(request: web.Request, response: web.StreamResponse) -> None:
    if request.path.startswith("/v2"):
        response.headers[API_VERSION_HEADER] = API_VERSION
