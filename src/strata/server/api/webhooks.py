"""/api/v1/webhooks: where release events are POSTed, and how deliveries went."""

from __future__ import annotations

from aiohttp import web

from strata.server.api import pages, parse
from strata.server.api.auth import Need, authorize
from strata.server.api.context import engine_of
from strata.server.http import json_response


async def list_webhooks(request: web.Request) -> web.Response:
    authorize(request, Need.RELENG)
    hooks, headers = pages.after_item(request, await engine_of(request).webhooks(),
                                      lambda h: str(h.id))
    return json_response({"webhooks": [h.to_json() for h in hooks]}, headers=headers)


async def add_webhook(request: web.Request) -> web.Response:
    authorize(request, Need.ADMIN)
    data = await parse.json_body(request)
    hook = await engine_of(request).add_webhook(
        parse.required(data, "url"), events=parse.strings(data, "events"),
        secret=parse.text(data, "secret"))
    return json_response(hook.to_json(), status=201)


async def deliveries(request: web.Request) -> web.Response:
    authorize(request, Need.RELENG)
    # a webhook id is a positive 32-bit integer (its declared bounds: a larger one
    # overflowed SQLite, or PostgreSQL's integer: a 500)
    items = await engine_of(request).deliveries(parse.query(request, "webhook"),
                                                limit=pages.size(request) + 1,
                                                before=pages.id_cursor(request))
    page, headers = pages.fetched(request, items, lambda d: str(d.id))
    return json_response({"deliveries": [d.to_json() for d in page]}, headers=headers)
