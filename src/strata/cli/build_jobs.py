"""``strata build <ns>/<name>`` (a build on the server from the image's registered source)
and ``strata build list|show|logs ID``: the server's build jobs."""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
from typing import Any

import aiohttp
import click

from strata.cli.common import emit, run_remote, server_options
from strata.client.api import ApiClient

ENDED = ("succeeded", "failed", "dropped")


def _api(url: str, session: aiohttp.ClientSession, user: str | None,
         password: str | None) -> ApiClient:
    return ApiClient(url, session, user=user, password=password)


def _when(value: Any) -> str:
    if not isinstance(value, (int, float)):
        return "-"
    return dt.datetime.fromtimestamp(value, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _job_text(job: dict[str, Any]) -> str:
    lines = [f"build {job['id']}: {job['kind']} of {job['repository']} — {job['state']}"
             f" (attempt {job['attempts']})",
             f"requested by {job['requested_by']} at {_when(job['created_at'])}"
             + (f": {job['reason']}" if job.get("reason") else "")]
    if job.get("source_url"):
        lines.append(f"source: {job['source_url']} {job.get('source_branch') or ''} "
                     f"{job.get('source_commit') or ''}".rstrip())
    if job.get("base_repository"):
        lines.append(f"base: {job['base_repository']}:{job.get('base_tag') or '?'} "
                     f"{job.get('base_digest') or ''}".rstrip())
    if job.get("result_nvr"):
        lines.append(f"result: {job['result_nvr']} {job.get('result_digest') or ''}".rstrip())
    if job.get("started_at"):
        lines.append(f"started {_when(job['started_at'])}, finished "
                     f"{_when(job.get('finished_at'))}")
    if job.get("error"):
        lines.append(f"error: {job['error']}")
    return "\n".join(lines)


async def _follow(api: ApiClient, job_id: int, *, echo: bool, poll: float = 1.0) -> None:
    offset = 0
    while True:
        got = await api.build_log(job_id, offset)
        if got["log"] and echo:
            sys.stderr.write(got["log"])
            sys.stderr.flush()
        offset = int(got["offset"])
        if got["state"] in ENDED and not got["log"]:
            return
        if not got["log"]:
            await asyncio.sleep(poll)


def server_build(url: str, user: str | None, password: str | None, as_json: bool,
                 repository: str, *, rebuild: bool, wait: bool, reason: str | None,
                 quiet: bool) -> None:
    async def go() -> dict[str, Any]:
        async with aiohttp.ClientSession() as session:
            api = _api(url, session, user, password)
            job = await api.start_build(repository, rebuild=rebuild, reason=reason)
            if not quiet and not as_json:
                click.echo(f"build {job['id']} of {repository} queued", err=True)
            if not wait:
                return dict(job)
            await _follow(api, int(job["id"]), echo=not (quiet or as_json))
            return dict(await api.build(int(job["id"])))
    job = run_remote(url, go)
    emit(job, as_json, _job_text)
    if wait and job["state"] == "failed":
        sys.exit(1)


@click.command("list")
@server_options
@click.option("--repository", default=None)
@click.option("--namespace", default=None)
@click.option("--state", type=click.Choice(["queued", "running", "succeeded", "failed",
                                            "dropped"]), default=None)
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
def build_list(url: str, user: str | None, password: str | None, as_json: bool,
               repository: str | None, namespace: str | None, state: str | None,
               limit: int) -> None:
    """The server's build jobs, newest first."""
    async def go() -> Any:
        async with aiohttp.ClientSession() as session:
            return await _api(url, session, user, password).builds(
                repository=repository, namespace=namespace, state=state, limit=limit)
    data = run_remote(url, go)

    def text(data: Any) -> str:
        rows = [f"{'ID':>5}  {'STATE':<9}  {'KIND':<7}  {'REPOSITORY':<30}  RESULT"]
        for job in data["builds"]:
            result = job.get("result_nvr") or job.get("error") or ""
            rows.append(f"{job['id']:>5}  {job['state']:<9}  {job['kind']:<7}  "
                        f"{job['repository']:<30}  {result[:60]}")
        return "\n".join(rows)
    emit(data, as_json, text)


@click.command("show")
@server_options
@click.argument("job_id", type=int)
def build_show(url: str, user: str | None, password: str | None, as_json: bool,
               job_id: int) -> None:
    """One build job: state, source commit, base, result or error."""
    async def go() -> Any:
        async with aiohttp.ClientSession() as session:
            return await _api(url, session, user, password).build(job_id)
    emit(run_remote(url, go), as_json, _job_text)


@click.command("logs")
@server_options
@click.argument("job_id", type=int)
@click.option("-f", "--follow", is_flag=True, help="Keep printing until the build ends.")
def build_logs(url: str, user: str | None, password: str | None, as_json: bool,
               job_id: int, follow: bool) -> None:
    """A build job's log (as far as it got, while it runs)."""
    async def go() -> Any:
        async with aiohttp.ClientSession() as session:
            api = _api(url, session, user, password)
            if not follow:
                return await api.build_log(job_id)
            offset = 0
            while True:
                got = await api.build_log(job_id, offset)
                if got["log"]:
                    click.echo(got["log"], nl=False)
                offset = int(got["offset"])
                if got["state"] in ENDED and not got["log"]:
                    return None
                if not got["log"]:
                    await asyncio.sleep(1.0)
    data = run_remote(url, go)
    if data is None:
        return
    if as_json:
        emit(data, True, str)
    else:
        click.echo(data["log"], nl=False)


