"""Release keys (issue 16): ``GET /api/v1/namespaces/{ns}/keys`` (anyone: public keys, current
first, then retired, with the identity signatures name), ``POST .../keys/rotate`` (releng or
admin: a new current key; the old one stays published) and ``GET /keys/{ns}.pub`` (the same
public keys as PEM, current first -- a ``keyPath`` file; ``strata trust config`` prints them
inline instead)."""

from __future__ import annotations

from aiohttp import web

from strata.server.api.auth import Need, actor, authorize
from strata.server.api.context import trust_of
from strata.server.http import json_response


async def list_keys(request: web.Request) -> web.Response:
    authorize(request, Need.READER)
    trust = trust_of(request)
    ns = request.match_info["ns"]
    return json_response(trust.describe(ns, await trust.keys(ns)))


async def rotate(request: web.Request) -> web.Response:
    authorize(request, Need.RELENG)
    trust = trust_of(request)
    ns = request.match_info["ns"]
    await trust.rotate(ns, actor(request))
    return json_response(trust.describe(ns, await trust.keys(ns)), status=201)


async def public_pem(request: web.Request) -> web.Response:
    trust = trust_of(request)
    keys = await trust.keys(request.match_info["ns"])
    return web.Response(text="".join(k.public_pem for k in keys),
                        content_type="application/x-pem-file")
