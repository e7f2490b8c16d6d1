"""/api/v1/builds: builds from an image's registered source, run as jobs.

* ``POST /api/v1/builds`` ``{"repository": "<ns>/<name>", "rebuild": false, "reason": ...}``:
  queue a build of the image from its registered source at its branch head (maintainer of the
  image, releng, admin). An unknown image is 404, an image without a source 400, one whose
  source the server may not clone (``--source-allow``) 403 DENIED. Answers 202 with the job.
* ``GET /api/v1/builds[?repository=&namespace=&state=&limit=]``: jobs, newest first.
* ``GET /api/v1/builds/{id}``: one job (state, attempts, source commit, base, result, error).
* ``GET /api/v1/builds/{id}/log[?offset=N]``: the log from character N, with the offset to
  ask from next and the job's state (readable while the job runs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from strata.config import source_refusal
from strata.errors import Code, RegistryError
from strata.meta.build_store import JOB_STATES, BuildJob, BuildStore, JobFilter
from strata.release.model import invalid, not_found, parse_repository
from strata.review.policy import candidate_refusal
from strata.server.api import parse
from strata.server.api.auth import Need, actor, authorize
from strata.server.api.context import engine_of
from strata.server.api.errors import mapped
from strata.server.http import json_response


@dataclass(frozen=True)
class BuildsApi:
    store: BuildStore
    source_allow: tuple[str, ...]


BUILDS_API = web.AppKey("builds_api", BuildsApi)


def job_json(job: BuildJob) -> dict[str, Any]:
    return job.to_json()


def _job_id(request: web.Request) -> int:
    text = request.match_info["id"]
    if not text.isdigit() or len(text) > 18:
        raise not_found(f"no build job {text!r}")
    return int(text)


async def start_build(request: web.Request) -> web.Response:
    authorize(request, Need.MAINTAINER)  # before reading the body: some image, any
    data = await parse.json_body(request)
    repo = parse_repository(parse.required(data, "repository")).value
    authorize(request, Need.MAINTAINER, repo)
    rebuild = data.get("rebuild", False)
    if not isinstance(rebuild, bool):
        raise invalid("rebuild must be true or false")
    image = (await engine_of(request).inventory.image(repo)).image  # 404 if unknown
    gate = candidate_refusal(repo, image.status, forced=False)
    if gate is not None:  # its candidate would be refused: an image still in review
        raise RegistryError(Code.DENIED, {"repository": repo}, message=gate)
    url, branch = image.source_url, image.source_branch
    if not url:
        raise invalid(f"{repo} has no registered source: strata image set {repo} "
                      "--source-url URL --source-branch BRANCH")
    api = request.app[BUILDS_API]
    refusal = source_refusal(str(url), api.source_allow)
    if refusal is not None:
        raise RegistryError(Code.DENIED, {"source": url}, message=refusal)
    job_id = await api.store.enqueue(
        repo, kind="build", reason=parse.text(data, "reason"), requested_by=actor(request),
        rebuild=rebuild, source_url=str(url), source_branch=branch)
    job = await api.store.job(job_id)
    assert job is not None
    return json_response(job_json(job), status=202)


async def list_builds(request: web.Request) -> web.Response:
    authorize(request, Need.READER)
    state = request.query.get("state") or None
    if state is not None and state not in JOB_STATES:
        raise invalid(f"unknown state {state!r} ({', '.join(JOB_STATES)})")
    limit = parse.integer(request.query, "limit", 100, low=1, high=1000)
    jobs = await request.app[BUILDS_API].store.jobs(JobFilter(
        repository=request.query.get("repository") or None,
        namespace=request.query.get("namespace") or None, state=state, limit=limit))
    return json_response({"builds": [job_json(j) for j in jobs]})


async def show_build(request: web.Request) -> web.Response:
    authorize(request, Need.READER)
    job_id = _job_id(request)
    job = await request.app[BUILDS_API].store.job(job_id)
    if job is None:
        raise not_found(f"no build job {job_id}")
    return json_response(job_json(job))


async def build_log(request: web.Request) -> web.Response:
    authorize(request, Need.READER)
    job_id = _job_id(request)
    offset = parse.integer(request.query, "offset", 0, low=0, high=1 << 40)
    got = await request.app[BUILDS_API].store.log(job_id, offset)
    if got is None:
        raise not_found(f"no build job {job_id}")
    text, state = got
    return json_response({"id": job_id, "log": text, "offset": offset + len(text),
                          "state": state})


def routes() -> list[web.RouteDef]:
    return mapped([
        web.get("/api/v1/builds", list_builds),
        web.post("/api/v1/builds", start_build),
        web.get("/api/v1/builds/{id}", show_build),
        web.get("/api/v1/builds/{id}/log", build_log),
    ])
