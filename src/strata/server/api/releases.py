"""/api/v1/plan, /api/v1/releases and /api/v1/rollback: the release engine's use-cases."""

from __future__ import annotations

from aiohttp import web

from strata.server.api import pages, parse
from strata.server.api.auth import Need, actor, authorize
from strata.server.api.context import engine_of
from strata.server.http import json_response


async def plan(request: web.Request) -> web.Response:
    authorize(request, Need.READER)
    engine = engine_of(request)
    plans = await engine.plan(parse.query(request, "namespace"), parse.query(request, "count"))
    out = []
    for item in plans:  # the rebuilds the next release waits for (queued or running)
        pending = await engine.rebuilds.pending(item.namespace.name)
        out.append({**item.to_json(), "rebuilds": [p.to_json() for p in pending]})
    return json_response({"plans": out})


async def list_releases(request: web.Request) -> web.Response:
    authorize(request, Need.READER)
    items = await engine_of(request).releases(parse.query(request, "namespace"),
                                              limit=pages.size(request) + 1,
                                              after=pages.cursor(request))
    page, headers = pages.fetched(request, items, lambda r: r.name)
    return json_response({"releases": [r.to_json() for r in page]}, headers=headers)


async def show_release(request: web.Request) -> web.Response:
    authorize(request, Need.READER)
    return json_response((await engine_of(request).release(request.match_info["name"])).to_json())


async def release_notes_json(request: web.Request) -> web.Response:
    authorize(request, Need.READER)
    release = await engine_of(request).release(request.match_info["name"])
    return json_response(release.release.notes)


async def release_notes_markdown(request: web.Request) -> web.Response:
    authorize(request, Need.READER)
    release = await engine_of(request).release(request.match_info["name"])
    return web.Response(text=release.notes_markdown or "", content_type="text/markdown")


async def publish(request: web.Request) -> web.Response:
    authorize(request, Need.RELENG)
    data = await parse.json_body(request)
    release = await engine_of(request).publish(
        parse.text(data, "name"), namespace=parse.text(data, "namespace"),
        actor=actor(request))
    return json_response((await engine_of(request).release(release.name)).to_json(), status=201)


async def oob(request: web.Request) -> web.Response:
    authorize(request, Need.RELENG)
    data = await parse.json_body(request)
    release = await engine_of(request).oob(
        parse.strings(data, "references"), advisories=parse.strings(data, "advisories"),
        reason=parse.text(data, "reason") or "", actor=actor(request),
        name=parse.text(data, "name"))
    return json_response((await engine_of(request).release(release.name)).to_json(), status=201)


async def rollback(request: web.Request) -> web.Response:
    authorize(request, Need.RELENG)
    data = await parse.json_body(request)
    event = await engine_of(request).rollback(
        parse.required(data, "reference"), to=parse.required(data, "to"),
        reason=parse.text(data, "reason") or "", actor=actor(request))
    return json_response(event.to_json())
