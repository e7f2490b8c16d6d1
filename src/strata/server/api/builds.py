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
from strata.server.api import bodies, pages, parse
from strata.server.api.auth import Need, actor, authorize
from strata.server.api.context import engine_of
from strata.server.api.schemas import list_of, ref
from strata.server.api.spec import Operation, Param
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
    if not (text.isascii() and text.isdigit()) or len(text) > 18 or int(text) > parse.MAX_ID:
        raise not_found(f"no build job {text[:40]!r}")
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
    # ``limit`` (from before pagination) is the page size when ``n`` is not given
    n = pages.size(request) if request.query.get("n") else parse.query(request, "limit")
    jobs = await request.app[BUILDS_API].store.jobs(JobFilter(
        repository=parse.query(request, "repository"),
        namespace=parse.query(request, "namespace"), state=parse.query(request, "state"),
        limit=n + 1, before=pages.id_cursor(request)))
    page, headers = pages.fetched(request, jobs[:n + 1], lambda j: str(j.id), size=n)
    return json_response({"builds": [job_json(j) for j in page]}, headers=headers)


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
    offset: int = parse.query(request, "offset")
    got = await request.app[BUILDS_API].store.log(job_id, offset)
    if got is None:
        raise not_found(f"no build job {job_id}")
    text, state = got
    return json_response({"id": job_id, "log": text, "offset": offset + len(text),
                          "state": state})


_ID = {"id": {"type": "string", "pattern": "^[0-9]{1,18}$"}}
_TEXT = {"type": "string", "maxLength": 255}

OPERATIONS = (
    Operation("GET", "/api/v1/builds", list_builds, "build jobs, newest first", "builds",
              query=(Param("repository", _TEXT), Param("namespace", _TEXT),
                     Param("state", {"enum": list(JOB_STATES)}),
                     Param("limit", {"type": "integer", "minimum": 1, "maximum": 1000,
                                     "default": 100}, "the page size when n is not given")),
              response=list_of("builds", ref("BuildJob")), paginated=True),
    Operation("POST", "/api/v1/builds", start_build,
              "queue a build of an image from its registered source", "builds",
              Need.MAINTAINER, body=bodies.BUILD_START, response=ref("BuildJob"), status=202),
    Operation("GET", "/api/v1/builds/{id}", show_build, "one build job", "builds",
              path_params=_ID, response=ref("BuildJob")),
    Operation("GET", "/api/v1/builds/{id}/log", build_log,
              "a build's log from character offset (readable while it runs)", "builds",
              path_params=_ID,
              query=(Param("offset", {"type": "integer", "minimum": 0, "maximum": parse.MAX_ID,
                                      "default": 0}),),
              response=ref("BuildLog")),
)
