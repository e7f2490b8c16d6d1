"""Running build jobs: clone the registered source at its branch head, build, register.

:class:`BuildRunner` takes jobs from the queue (``claim``), at most ``concurrency`` at a time,
and for each one:

1. finds its source: the URL and branch recorded on the job, else the image's registered
   ones (a rebuild); refuses a URL outside the allow-list (``--source-allow``) again, since
   the image's source may have changed since the job was queued;
2. clones it with the ``git`` binary, shallow (``--depth 1 --single-branch``), into an
   owner-only directory of the work area, with only the URL's own transport allowed
   (``protocol.allow=never`` otherwise) and no system or global git configuration;
3. builds it with the existing builder (:func:`strata.build.publish.run_build`) with the
   commit time as ``SOURCE_DATE_EPOCH``, pushes it and registers the candidate through the
   registry's own HTTP API, acting for the account that asked for the job (a bearer token
   minted for it: its rights decide, and a change of its credentials ends the token);
4. records the log (appended while the build runs), and the result: source commit, base
   repository, stream tag and digest, package list digest, image digest and NVR.

A heartbeat keeps the job's lease; a job whose runner died is queued again by
``requeue_interrupted`` (at start of ``strata serve``, or by any worker once the lease ran out).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import stat
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from strata.build.errors import BuildError
from strata.build.jail import JailLimits
from strata.config import source_refusal
from strata.meta.build_store import BuildJob, BuildResult, BuildStore

log = logging.getLogger("strata.jobs")

# (account, repository, pull_from) -> a bearer token acting for the account on the repository
# and the JSON API, with pull on the repositories *pull_from* too (where base layers are
# mounted from), or None (an open registry: no token needed)
Credentials = Callable[[str, str, tuple[str, ...]], Awaitable[str | None]]
# repository -> (source URL, branch) registered for the image, or None: no such image
Sources = Callable[[str], Awaitable[tuple[str | None, str | None] | None]]

_GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL":
            os.devnull, "LC_ALL": "C", "GIT_ALLOW_PROTOCOL": ""}
MAX_LOG_CHARS = 4 << 20
#: How often an idle runner looks for queued jobs (a read; ``STRATA_BUILD_POLL``, ``worker
#: --poll``): a job -- a rebuild a release queued -- waits half of it on average to start.
POLL_SECONDS = 0.25


@dataclass(frozen=True)
class RunnerSettings:
    registry_url: str  # where builds are pushed and registered
    work_dir: Path  # clones and build directories (owner-only)
    cache_dir: Path  # base image layers, shared by the jobs
    source_allow: tuple[str, ...]
    worker_id: str
    concurrency: int = 1
    heartbeat_seconds: float = 10.0
    poll_seconds: float = POLL_SECONDS
    lease_seconds: float | None = None  # requeue jobs whose heartbeat is older (workers)
    clone_timeout: float = 600.0
    limits: JailLimits = field(default_factory=JailLimits)  # of each RUN's jail


class _Log:
    """The job's log: lines and RUN output gathered from the build thread, written to the
    database every half second (and at the end)."""

    def __init__(self, store: BuildStore, job_id: int) -> None:
        self.store, self.job_id = store, job_id
        self.pending: list[str] = []
        self.size = 0
        self.lock = threading.Lock()  # the build thread adds, the event loop takes

    def line(self, text: str) -> None:
        self.add(text.rstrip("\n") + "\n")

    def output(self, data: bytes) -> None:
        self.add(data.decode("utf-8", "replace"))

    def add(self, text: str) -> None:
        with self.lock:
            if self.size >= MAX_LOG_CHARS:
                return
            if self.size + len(text) >= MAX_LOG_CHARS:
                text = text[:MAX_LOG_CHARS - self.size] + "\n[strata] log truncated\n"
            self.size += len(text)
            self.pending.append(text)

    async def flush(self) -> None:
        with self.lock:
            taken, self.pending = self.pending, []
        if taken:
            await self.store.append_log(self.job_id, "".join(taken))

    async def run(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            with contextlib.suppress(Exception):
                await self.flush()


def _scheme(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else "ssh"


async def _git(args: list[str], *, cwd: Path | None, seconds: float, env: dict[str, str],
               sink: _Log) -> str:
    proc = await asyncio.create_subprocess_exec(
        "git", *args, cwd=cwd, env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), seconds)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise BuildError(f"git {args[0]} took longer than {seconds:.0f} s") from None
    if err:
        sink.output(err)
    if proc.returncode != 0:
        raise BuildError(f"git {args[0]} failed: {err.decode(errors='replace').strip()}")
    return out.decode().strip()


async def clone_source(url: str, branch: str | None, dest: Path, *, seconds: float,
                       sink: _Log) -> tuple[str, int]:
    """Shallow clone of *url* at the head of *branch* into *dest*; (commit, commit time)."""
    scheme = _scheme(url)
    home = dest.parent
    env = {**_GIT_ENV, "HOME": os.fspath(home), "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
           "GIT_ALLOW_PROTOCOL": scheme}
    args = ["-c", "protocol.allow=never", "-c", f"protocol.{scheme}.allow=always",
            "-c", "core.hooksPath=/dev/null", "-c", "safe.directory=*",
            "clone", "--quiet", "--depth", "1", "--single-branch", "--no-tags"]
    if branch:
        args += ["--branch", branch]
    sink.line(f"[strata] cloning {url}" + (f" (branch {branch})" if branch else ""))
    await _git([*args, "--", url, os.fspath(dest)], cwd=home, seconds=seconds, env=env,
               sink=sink)
    commit = await _git(["-c", "safe.directory=*", "rev-parse", "HEAD"], cwd=dest,
                        seconds=60, env=env, sink=sink)
    when = await _git(["-c", "safe.directory=*", "log", "-1", "--format=%ct", "HEAD"],
                      cwd=dest, seconds=60, env=env, sink=sink)
    return commit, int(when) if when.isdigit() else 0


def _base_of(data: dict[str, Any]) -> tuple[str | None, str | None, str | None]:
    from strata.build.remote import parse_image_ref

    base = data.get("base") or None
    if not isinstance(base, dict) or not base.get("reference"):
        return None, None, None
    try:
        ref = parse_image_ref(str(base["reference"]))
    except BuildError:
        return None, None, base.get("digest")
    return ref.repository, ref.tag, base.get("digest")


class BuildRunner:
    """Takes jobs from *store* and runs them (see the module docstring)."""

    def __init__(self, store: BuildStore, settings: RunnerSettings, *,
                 credentials: Credentials, sources: Sources) -> None:
        self.store = store
        self.settings = settings
        self.credentials = credentials
        self.sources = sources
        self._slots = asyncio.Semaphore(max(1, settings.concurrency))
        self._tasks: set[asyncio.Task[None]] = set()

    async def run_forever(self) -> None:
        """Claim and run jobs until cancelled (running ones are cancelled too: they stay
        ``running`` and are queued again by the next start or once their lease runs out)."""
        try:
            while True:
                await self._slots.acquire()
                try:
                    job = await self._next()
                except Exception:
                    log.exception("claiming a build job failed")
                    job = None
                if job is None:
                    self._slots.release()
                    await asyncio.sleep(self.settings.poll_seconds)
                    continue
                task = asyncio.create_task(self._run_and_release(job))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        finally:
            for task in list(self._tasks):
                task.cancel()
            for task in list(self._tasks):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _next(self) -> BuildJob | None:
        lease = self.settings.lease_seconds
        if lease is not None:
            await self.store.requeue_interrupted(stale_before=self.store.db.now() - lease)
        if not await self.store.any_queued():  # a read: no write transaction per poll
            return None
        return await self.store.claim(self.settings.worker_id)

    async def _run_and_release(self, job: BuildJob) -> None:
        try:
            await self.run_job(job)
        finally:
            self._slots.release()

    async def run_job(self, job: BuildJob) -> None:
        sink = _Log(self.store, job.id)
        sink.line(f"[strata] job {job.id} ({job.kind} of {job.repository}, attempt "
                  f"{job.attempts}) on {self.settings.worker_id}")
        flusher = asyncio.create_task(sink.run())
        beat = asyncio.create_task(self._beat(job))
        work = self.settings.work_dir / f"job-{job.id}-{job.attempts}"
        state, result, error = "failed", None, None
        try:
            result, dropped = await self._build(job, work, sink)
            if dropped:  # a rebuild repeating the current candidate or release
                state = "dropped"
                sink.line(f"[strata] dropped: unchanged, the same source commit, base and "
                          f"packages as {result.result_nvr} {result.result_digest}")
            else:
                state = "succeeded"
                sink.line(f"[strata] built {result.result_nvr} {result.result_digest}")
        except BuildError as exc:
            error = exc.message
            sink.line(f"[strata] error: {exc.message}")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug or an I/O failure: recorded, the runner goes on
            log.exception("build job %d failed", job.id)
            error = f"{type(exc).__name__}: {exc}"
            sink.line(f"[strata] error: {error}")
        finally:
            beat.cancel()
            flusher.cancel()
            await asyncio.to_thread(shutil.rmtree, work, True)
        await sink.flush()
        await self.store.finish(job.id, state, result=result, error=error,
                                worker_id=self.settings.worker_id)

    async def _beat(self, job: BuildJob) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat_seconds)
            with contextlib.suppress(Exception):
                await self.store.heartbeat(job.id, self.settings.worker_id)

    async def _build(self, job: BuildJob, work: Path, sink: _Log) -> tuple[BuildResult, bool]:
        """What the job built, and whether it was dropped as an unchanged rebuild (a
        ``rebuild`` job registers its build only if it changed: ``if_changed``)."""
        # The builder and the clients it pushes with are imported by the first job, not with
        # the runner: every serving worker runs one, most never build (~3 MiB of modules per
        # process; issue #18, peak PSS).
        from strata.build.builder import BuildOptions
        from strata.build.publish import Registry, SourceSpec, run_build
        from strata.client.api import ApiClient
        from strata.client.registry import RegistryClient

        url, branch = job.source_url, job.source_branch
        if url is None:
            found = await self.sources(job.repository)
            if found is None:
                raise BuildError(f"{job.repository} is not a registered image")
            url, branch = found
        if not url:
            raise BuildError(f"{job.repository} has no registered source: strata image set "
                             f"{job.repository} --source-url URL --source-branch BRANCH")
        refusal = source_refusal(url, self.settings.source_allow)
        if refusal is not None:
            raise BuildError(refusal)
        _private_dir(self.settings.work_dir)
        _private_dir(work)
        commit, when = await clone_source(url, branch, work / "source",
                                          seconds=self.settings.clone_timeout, sink=sink)
        await self.store.set_source(job.id, url, branch, commit)
        sink.line(f"[strata] {url} {branch or 'HEAD'} at {commit} "
                  f"(SOURCE_DATE_EPOCH={when})")
        token = await self.credentials(job.requested_by, job.repository, ())

        async def rescope(scopes: Sequence[str]) -> str | None:
            """The token again, with pull on the other repositories of a challenge: the
            base repository a layer is mounted from (never pushed again)."""
            pull = tuple(sorted({name for name in map(_repository_of_scope, scopes)
                                 if name and name != job.repository}))
            return await self.credentials(job.requested_by, job.repository, pull)
        namespace = job.repository.split("/", 1)[0] if "/" in job.repository else None
        opts = BuildOptions(cache_dir=self.settings.cache_dir, namespace=namespace,
                            limits=self.settings.limits)
        spec = SourceSpec(os.fspath(work / "source"), ref=branch, commit=commit,
                          source_date_epoch=when, url=url, repository=job.repository)
        url_ = self.settings.registry_url
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            registry = Registry(url_, RegistryClient(
                url_, session, tokens={job.repository: token} if token else None,
                rescope=rescope if token else None),
                ApiClient(url_, session, token=token,
                          user=None if token else job.requested_by))
            data = await run_build(registry, spec, opts, rebuild=job.rebuild,
                                   if_changed=job.kind == "rebuild", work_parent=work,
                                   log=sink.line, output=sink.output)
        if data.get("reused"):
            sink.line(f"[strata] {data['nvr']} was already built from this commit and base")
        base_repo, base_tag, base_digest = _base_of(data)
        return BuildResult(source_commit=commit, base_repository=base_repo, base_tag=base_tag,
                           base_digest=base_digest, packages_digest=data.get("packages_digest"),
                           result_digest=str(data["digest"]), result_nvr=str(data["nvr"])), \
            bool(data.get("dropped"))


def _repository_of_scope(scope: str) -> str | None:
    """``repository:NAME:ACTIONS`` -> NAME (None for any other scope)."""
    kind, _, rest = scope.partition(":")
    name, _, _ = rest.rpartition(":")
    return name if kind == "repository" and name else None


def _private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if stat.S_IMODE(path.stat().st_mode) != 0o700:
        path.chmod(0o700)
