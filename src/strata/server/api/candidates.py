"""/api/v1/candidates: builds registered for release (``strata candidate add``)."""

from __future__ import annotations

from aiohttp import web

from strata.release.model import BuildStatus, invalid, parse_build_ref
from strata.server.api import parse
from strata.server.api.auth import Need, actor, authorize
from strata.server.api.context import engine_of
from strata.server.http import json_response


async def list_candidates(request: web.Request) -> web.Response:
    authorize(request, Need.READER)
    status_text = request.query.get("status", BuildStatus.CANDIDATE.value)
    if status_text not in {s.value for s in BuildStatus} | {"all"}:
        raise invalid(f"unknown status {status_text!r} (candidate, released or all)")
    status = None if status_text == "all" else BuildStatus(status_text)
    builds = await engine_of(request).inventory.candidates(
        namespace=request.query.get("namespace") or None,
        repository=request.query.get("repository") or None, status=status)
    return json_response({"candidates": [b.to_json() for b in builds]})


async def add_candidate(request: web.Request) -> web.Response:
    authorize(request, Need.MAINTAINER)  # before reading the body: some image, any
    data = await parse.json_body(request)
    repo, digest = parse_build_ref(parse.required(data, "reference"))
    authorize(request, Need.MAINTAINER, repo.value)
    build = await engine_of(request).inventory.add_candidate(
        repo.value, str(digest), actor=actor(request),
        advisories=parse.strings(data, "advisories"), reason=parse.text(data, "reason"))
    return json_response(build.to_json(), status=201)
