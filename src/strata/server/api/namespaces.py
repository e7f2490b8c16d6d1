"""/api/v1/namespaces and /api/v1/images: the namespaces and images the engine manages."""

from __future__ import annotations

from aiohttp import web

from strata.release.model import ImageStatus, invalid, repository_from_segments
from strata.release.schedule import MAX_INTERVAL_DAYS
from strata.server.api import parse
from strata.server.api.auth import Need, authorize
from strata.server.api.context import engine_of
from strata.server.http import json_response


async def list_namespaces(request: web.Request) -> web.Response:
    authorize(request, Need.READER)
    items = await engine_of(request).inventory.namespaces()
    return json_response({"namespaces": [ns.to_json() for ns in items]})


async def show_namespace(request: web.Request) -> web.Response:
    authorize(request, Need.READER)
    ns = await engine_of(request).inventory.namespace(request.match_info["ns"])
    return json_response(ns.to_json())


async def add_namespace(request: web.Request) -> web.Response:
    authorize(request, Need.RELENG)
    data = await parse.json_body(request)
    ns = await engine_of(request).inventory.add_namespace(
        parse.required(data, "name"), parse.text(data, "dist_tag") or "",
        interval_days=parse.integer(data, "interval_days", 14, low=1,
                                    high=MAX_INTERVAL_DAYS),
        anchor=parse.date(parse.text(data, "anchor")),
        base_image=parse.text(data, "base_image"))
    return json_response(ns.to_json(), status=201)


async def update_namespace(request: web.Request) -> web.Response:
    """``PATCH /api/v1/namespaces/{ns}`` with ``{"base_image": REPOSITORY or null}``."""
    authorize(request, Need.RELENG)
    data = await parse.json_body(request)
    if set(data) - {"base_image"}:
        raise invalid(f"only base_image can be changed, not {sorted(set(data) - {'base_image'})}")
    ns = await engine_of(request).inventory.set_base_image(
        request.match_info["ns"], parse.text(data, "base_image"))
    return json_response(ns.to_json())


async def list_images(request: web.Request) -> web.Response:
    authorize(request, Need.READER)
    items = await engine_of(request).inventory.images(request.query.get("namespace") or None)
    return json_response({"images": [image.to_json() for image in items]})


async def show_image(request: web.Request) -> web.Response:
    authorize(request, Need.READER)
    return json_response(await engine_of(request).inventory.image(image_repository(request)))


def image_repository(request: web.Request) -> str:
    """The repository of an ``/api/v1/images/{ns}/{name}`` path (``_`` is the root)."""
    return repository_from_segments(request.match_info["ns"], request.match_info["name"])


async def add_image(request: web.Request) -> web.Response:
    authorize(request, Need.RELENG)
    data = await parse.json_body(request)
    status = parse.text(data, "status") or ImageStatus.ACTIVE.value
    if status not in {s.value for s in ImageStatus}:
        raise invalid(f"unknown image status {status!r}")
    image = await engine_of(request).inventory.add_image(
        parse.required(data, "repository"), maintainers=parse.strings(data, "maintainers"),
        source_url=parse.text(data, "source_url"),
        source_branch=parse.text(data, "source_branch"), status=ImageStatus(status),
        namespace=parse.text(data, "namespace"))
    return json_response(image.to_json(), status=201)
