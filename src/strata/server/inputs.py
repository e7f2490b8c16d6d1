"""A guard every request outside ``/v2/`` passes: no NUL character in its path or query.

No name, tag, search term or cursor may hold one, and PostgreSQL cannot store or compare
text that does (psycopg raises, which was a 500): such a request is a 400 ``INVALID`` before
any handler reads it. ``/v2/`` checks its paths against the distribution grammar instead
(:mod:`strata.server.routes`); JSON bodies are checked by
:func:`strata.server.api.parse.json_body`.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from strata.errors import Code, RegistryError


@web.middleware
async def refuse_nul(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith("/v2/") and (
            "\x00" in request.path
            or any("\x00" in k or "\x00" in v for k, v in request.query.items())):
        raise RegistryError(Code.INVALID, {"path": request.path[:200].replace("\x00", "\\0")},
                            message="invalid request: a NUL character in the path or query")
    return await handler(request)
