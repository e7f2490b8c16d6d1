"""/api/v1/namespaces and /api/v1/images: the namespaces and images the engine manages.

A namespace's JSON carries ``rebuild_days_before`` (the rebuild loop's pre-release rebuilds,
:mod:`strata.release.rebuilds`; null: none), set by POST and PATCH. ``GET /api/v1/images?stale=1``
lists the active images whose base stream moved since their latest build."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from strata.release.model import (
    ImageStatus,
    Namespace,
    invalid,
    not_found,
    repository_from_segments,
)
from strata.release.rebuilds import MAX_DAYS_BEFORE
from strata.release.schedule import MAX_INTERVAL_DAYS
from strata.server.api import pages, parse
from strata.server.api.auth import Need, actor, authorize
from strata.server.api.context import engine_of
from strata.server.http import json_response


async def _with_setting(request: web.Request, items: list[Namespace]) -> list[dict[str, Any]]:
    days = await engine_of(request).rebuilds.days_before()
    return [{**ns.to_json(), "rebuild_days_before": days.get(ns.name)} for ns in items]


def _days_before(data: dict[str, Any]) -> int | None:
    if data.get("rebuild_days_before") is None:
        return None
    return parse.integer(data, "rebuild_days_before", 0, low=0, high=MAX_DAYS_BEFORE)


async def list_namespaces(request: web.Request) -> web.Response:
    authorize(request, Need.READER)
    items, headers = pages.after_key(
        request, await engine_of(request).inventory.namespaces(), lambda ns: ns.name)
    return json_response({"namespaces": await _with_setting(request, items)},
                         headers=headers)


async def show_namespace(request: web.Request) -> web.Response:
    authorize(request, Need.READER)
    ns = await engine_of(request).inventory.namespace(request.match_info["ns"])
    return json_response((await _with_setting(request, [ns]))[0])


async def add_namespace(request: web.Request) -> web.Response:
    authorize(request, Need.RELENG)
    data = await parse.json_body(request)
    ns = await engine_of(request).inventory.add_namespace(
        parse.required(data, "name"), parse.text(data, "dist_tag") or "",
        interval_days=parse.integer(data, "interval_days", 14, low=1,
                                    high=MAX_INTERVAL_DAYS),
        anchor=parse.date(parse.text(data, "anchor")),
        base_image=parse.text(data, "base_image"))
    days = _days_before(data)
    if days is not None:
        await engine_of(request).rebuilds.set_days_before(ns.name, days)
    return json_response((await _with_setting(request, [ns]))[0], status=201)


_CHANGEABLE = {"base_image", "rebuild_days_before"}


async def update_namespace(request: web.Request) -> web.Response:
    """``PATCH /api/v1/namespaces/{ns}`` with ``{"base_image": REPOSITORY or null}`` and/or
    ``{"rebuild_days_before": N or null}``."""
    authorize(request, Need.RELENG)
    data = await parse.json_body(request)
    if set(data) - _CHANGEABLE:
        raise invalid(f"only {', '.join(sorted(_CHANGEABLE))} can be changed, not "
                      f"{sorted(set(data) - _CHANGEABLE)}")
    engine = engine_of(request)
    name = request.match_info["ns"]
    days = _days_before(data)
    if "base_image" in data:
        ns = await engine.inventory.set_base_image(name, parse.text(data, "base_image"))
    else:
        ns = await engine.inventory.namespace(name)
    if "rebuild_days_before" in data and not await engine.rebuilds.set_days_before(name, days):
        raise not_found(f"unknown namespace {name!r}")
    return json_response((await _with_setting(request, [ns]))[0])


async def list_images(request: web.Request) -> web.Response:
    authorize(request, Need.READER)
    namespace = parse.query(request, "namespace")
    if parse.query(request, "stale"):
        stale = sorted(await engine_of(request).rebuilds.stale(namespace),
                       key=lambda s: s.repository)
        page, headers = pages.after_key(request, stale, lambda s: s.repository)
        return json_response({"images": [{**s.to_json(), "stale": True} for s in page]},
                             headers=headers)
    items, headers = pages.after_key(
        request, await engine_of(request).inventory.images(namespace), lambda i: i.repository)
    return json_response({"images": [image.to_json() for image in items]}, headers=headers)


async def show_image(request: web.Request) -> web.Response:
    authorize(request, Need.READER)
    image = await engine_of(request).inventory.image(image_repository(request))
    return json_response(image.to_json())


def image_repository(request: web.Request) -> str:
    """The repository of an ``/api/v1/images/{ns}/{name}`` path (``_`` is the root)."""
    return repository_from_segments(request.match_info["ns"], request.match_info["name"])


async def add_image(request: web.Request) -> web.Response:
    """Register an image directly, without a review (releng/admin): recorded as a forced
    registration with ``reason`` (default ``registered directly (strata image add)``)."""
    authorize(request, Need.RELENG)
    data = await parse.json_body(request)
    status = parse.text(data, "status") or ImageStatus.ACTIVE.value
    if status not in {s.value for s in ImageStatus}:
        raise invalid(f"unknown image status {status!r}")
    source_url = parse.text(data, "source_url")
    image = await engine_of(request).inventory.add_image(
        parse.required(data, "repository"), maintainers=parse.strings(data, "maintainers"),
        source_url=source_url,
        source_branch=parse.text(data, "source_branch"), status=ImageStatus(status),
        namespace=parse.text(data, "namespace"), summary=parse.text(data, "summary"),
        actor=actor(request), reason=parse.text(data, "reason"))
    return json_response(image.to_json(), status=201)
