"""/api/v1/images/{ns}/{name}/streams and .../history: version streams and tag history."""

from __future__ import annotations

import dataclasses

from aiohttp import web

from strata.server.api import pages, parse
from strata.server.api.auth import Need, actor, authorize
from strata.server.api.context import engine_of
from strata.server.api.namespaces import image_repository as _repository
from strata.server.http import json_response


async def list_streams(request: web.Request) -> web.Response:
    """``.../streams``: a page of the image's version streams, by version (``last``: a
    version)."""
    authorize(request, Need.READER)
    streams = await engine_of(request).inventory.streams(_repository(request))
    page, headers = pages.after_key(request, streams, lambda s: s.version)
    return json_response({"repository": _repository(request),
                          "streams": [s.to_json() for s in page]}, headers=headers)


async def end_stream(request: web.Request) -> web.Response:
    authorize(request, Need.RELENG)
    stream = await engine_of(request).eol(
        f"{_repository(request)}:{request.match_info['version']}", actor=actor(request))
    return json_response(stream.to_json())


async def history(request: web.Request) -> web.Response:
    """``.../history[?tag=&at=]``: the image's tag events (one tag's with ``tag``)."""
    return await _history(request, parse.query(request, "tag"))


async def tag_history(request: web.Request) -> web.Response:
    """``.../tags/{tag}/history[?at=]``: one tag's events (with ``at``: its digest then)."""
    return await _history(request, request.match_info["tag"])


async def _history(request: web.Request, tag: str | None) -> web.Response:
    """A page of the events, oldest first (``last``: an event's id, from the ``Link``)."""
    authorize(request, Need.READER)
    at = parse.timestamp(parse.query(request, "at"))
    result = await engine_of(request).inventory.history(
        _repository(request), tag or None, at, after=pages.id_cursor(request),
        limit=pages.size(request) + 1)
    page, headers = pages.fetched(request, result.events, lambda e: str(e.id))
    return json_response(dataclasses.replace(result, events=tuple(page)).to_json(),
                         headers=headers)
