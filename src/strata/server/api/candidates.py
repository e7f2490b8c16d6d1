"""/api/v1/candidates: builds registered for release (``strata candidate add``, ``list``,
``withdraw``).

* ``GET /api/v1/candidates[?namespace=&repository=&status=]``: ``status`` is ``candidate``
  (pending, the default), ``withdrawn``, ``released``, ``unreleased`` (pending and withdrawn)
  or ``all``.
* ``POST /api/v1/candidates`` ``{"reference": "<ns>/<name>@<digest>", "advisories": [...],
  "reason": ..., "source": {"url", "commit"}, "base": {"repository", "tag", "digest"},
  "packages": [{"name", "version", "arch"}], "record": DIGEST, "help": TEXT, "if_changed":
  bool}``: register a pushed build (maintainer of the image, releng, admin) with what it was
  built from (``strata build`` sends it; recorded for the rebuild loop), the digest of the
  build record referrer it pushed (``record``: the one the release's provenance names, of
  the several an image may have) and its help file (``help``, at
  most 64 KiB; indexed for search with the image's labels). The answer is the build plus
  ``warnings``: why a release of it would move no stream, and ``inputs``. With
  ``if_changed`` (a rebuild: the rebuild loop's jobs, ``strata build --if-changed``) a
  build whose source commit, base digest and package list are those of the repository's
  current candidate or release is refused, 409 CONFLICT with ``detail: {"unchanged": true,
  "same_as": {nvr, digest, status}}``: it is dropped and gets no NVR.
  Only an ``active`` image takes candidates: an image that is not registered or still in
  review is refused (403 DENIED: submit it for review) unless ``"force": true``
  (releng/admin) with a ``reason``, recorded in the image's events.
* ``POST /api/v1/candidates/withdraw`` ``{"reference": "<ns>/<name>@<digest>", "reason":
  TEXT}``: take a pending build out of the next release (maintainer of the image, releng,
  admin); answers the build, status ``withdrawn`` with ``withdrawn: {by, at, reason}``.
"""

from __future__ import annotations

from aiohttp import web

from strata.catalog.search import MAX_HELP
from strata.release.model import BuildStatus, conflict, invalid, parse_build_ref
from strata.release.rebuild import parse_inputs
from strata.release.rebuilds import Unchanged
from strata.server.api import pages, parse
from strata.server.api.auth import Need, actor, authorize
from strata.server.api.context import engine_of
from strata.server.http import json_response

STATUSES: dict[str, BuildStatus | tuple[BuildStatus, ...] | None] = {
    **{s.value: s for s in BuildStatus},
    "unreleased": (BuildStatus.CANDIDATE, BuildStatus.WITHDRAWN),
    "all": None,
}


async def list_candidates(request: web.Request) -> web.Response:
    authorize(request, Need.READER)
    builds = await engine_of(request).inventory.candidates(
        namespace=parse.query(request, "namespace"),
        repository=parse.query(request, "repository"),
        status=STATUSES[parse.query(request, "status")])
    page, headers = pages.after_item(request, builds, lambda b: f"{b.repository}@{b.digest}")
    return json_response({"candidates": [b.to_json() for b in page]}, headers=headers)


async def add_candidate(request: web.Request) -> web.Response:
    authorize(request, Need.MAINTAINER)  # before reading the body: some image, any
    data = await parse.json_body(request)
    repo, digest = parse_build_ref(parse.required(data, "reference"))
    authorize(request, Need.MAINTAINER, repo.value)
    force = data.get("force", False)
    if not isinstance(force, bool):
        raise invalid("force must be true or false")
    reason = parse.text(data, "reason")
    if force:
        authorize(request, Need.RELENG)
        if not (reason or "").strip():
            raise invalid("a forced registration needs a reason (--reason), recorded in the "
                          "image's events")
    try:
        inputs = parse_inputs(data)
    except ValueError as exc:
        raise invalid(str(exc)) from None
    engine = engine_of(request)
    if inputs is not None and data.get("if_changed") is True:
        try:
            await engine.rebuilds.check_unchanged(repo.value, inputs)
        except Unchanged as exc:
            raise conflict(str(exc), exc.detail()) from None
    help_text = parse.text(data, "help")
    if help_text is not None and len(help_text) > MAX_HELP:
        raise invalid(f"help is longer than {MAX_HELP} characters")
    inventory = engine.inventory
    build = await inventory.add_candidate(
        repo.value, str(digest), actor=actor(request),
        advisories=parse.strings(data, "advisories"), reason=reason,
        force_reason=reason if force else None, help_text=help_text)
    if inputs is not None:
        await engine.rebuilds.record(build.repository, build.digest, inputs)
    warnings = await inventory.stream_warnings(build)
    recorded = await engine.rebuilds.inputs([(build.repository, build.digest)])
    known = recorded.get((build.repository, build.digest))
    return json_response({**build.to_json(), "warnings": warnings,
                          "inputs": None if known is None else known.to_json()}, status=201)


async def withdraw_candidate(request: web.Request) -> web.Response:
    authorize(request, Need.MAINTAINER)  # before reading the body: some image, any
    data = await parse.json_body(request)
    reference = parse.required(data, "reference")
    repo, _ = parse_build_ref(reference)
    authorize(request, Need.MAINTAINER, repo.value)
    build = await engine_of(request).inventory.withdraw_candidate(
        reference, actor=actor(request), reason=parse.required(data, "reason"))
    return json_response(build.to_json())
