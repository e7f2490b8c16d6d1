"""The build queue and its records (table ``build_jobs``, :mod:`strata.meta.schema_build`).

A job is queued by :meth:`BuildStore.enqueue` (``strata build <ns>/<name>``, or the rebuild
loop with ``kind="rebuild", rebuild=True``), taken by one runner with :meth:`BuildStore.claim`
(PostgreSQL: ``FOR UPDATE SKIP LOCKED``, so workers on several machines never take the same
job; SQLite: the data dir's write lock, under which every write runs), kept alive by
:meth:`BuildStore.heartbeat`, its output appended by :meth:`BuildStore.append_log`, and ended by
:meth:`BuildStore.finish`. A job left ``running`` by a runner that died is put back by
:meth:`BuildStore.requeue_interrupted` (at start of the embedded runner: every running job; a
worker: the jobs whose heartbeat is older than a lease) until it has used ``max_attempts``,
then it fails with the reason.

Every method has a synchronous twin (``*_sync``) for threads and offline commands;
:func:`insert_job` adds a job inside another write transaction (a release that queues
rebuilds in the transaction that moves the stream).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import sqlalchemy as sa

from strata.meta.database import Batch, Database
from strata.meta.schema_build import build_jobs
from strata.meta.schema_release import images

__all__ = ["JOB_KINDS", "JOB_STATES", "BuildJob", "BuildResult", "BuildStore", "JobFilter",
           "insert_job"]

JobKind = Literal["build", "rebuild"]
JobState = Literal["queued", "running", "succeeded", "failed", "dropped"]
JOB_KINDS: tuple[str, ...] = ("build", "rebuild")
JOB_STATES: tuple[str, ...] = ("queued", "running", "succeeded", "failed", "dropped")
ENDED: tuple[str, ...] = ("succeeded", "failed", "dropped")
MAX_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class BuildResult:
    """What a finished job records: the inputs it was built from and what it made."""

    source_commit: str | None = None
    base_repository: str | None = None
    base_tag: str | None = None
    base_digest: str | None = None
    packages_digest: str | None = None
    result_digest: str | None = None
    result_nvr: str | None = None


@dataclass(frozen=True, slots=True)
class BuildJob:
    id: int
    repository: str
    kind: str
    reason: str | None
    state: str
    rebuild: bool
    attempts: int
    requested_by: str
    created_at: float
    started_at: float | None
    finished_at: float | None
    worker: str | None
    heartbeat_at: float | None
    source_url: str | None
    source_branch: str | None
    source_commit: str | None
    base_repository: str | None
    base_tag: str | None
    base_digest: str | None
    packages_digest: str | None
    result_digest: str | None
    result_nvr: str | None
    error: str | None
    log_size: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class JobFilter:
    repository: str | None = None
    namespace: str | None = None
    state: str | None = None
    kind: str | None = None
    limit: int = 100
    before: int | None = None  # only jobs older than this id (the API's cursor)


_COLUMNS = [c for c in build_jobs.c if c.name != "log"]


def _select() -> sa.Select[Any]:
    return sa.select(*_COLUMNS, sa.func.length(build_jobs.c.log).label("log_size"))


def _job(row: sa.Row[Any]) -> BuildJob:
    m = row._mapping
    return BuildJob(
        id=m["id"], repository=m["repository"], kind=m["kind"], reason=m["reason"],
        state=m["state"], rebuild=bool(m["rebuild"]), attempts=m["attempts"],
        requested_by=m["requested_by"], created_at=m["created_at"],
        started_at=m["started_at"], finished_at=m["finished_at"], worker=m["worker"],
        heartbeat_at=m["heartbeat_at"], source_url=m["source_url"],
        source_branch=m["source_branch"], source_commit=m["source_commit"],
        base_repository=m["base_repository"], base_tag=m["base_tag"],
        base_digest=m["base_digest"], packages_digest=m["packages_digest"],
        result_digest=m["result_digest"], result_nvr=m["result_nvr"], error=m["error"],
        log_size=int(m["log_size"] or 0))


def insert_job(conn: sa.Connection, now: float, repository: str, *, kind: str,
               reason: str | None, requested_by: str, rebuild: bool,
               source_url: str | None = None, source_branch: str | None = None) -> int:
    """Queue a job inside the caller's write transaction; its id.

    A rebuild of a repository that already has a rebuild queued (not yet started) is that
    job: the rebuild loop may ask twice, the image is rebuilt once."""
    if kind not in JOB_KINDS:
        raise ValueError(f"unknown build job kind {kind!r}")
    if kind == "rebuild":
        queued = conn.execute(
            sa.select(build_jobs.c.id).where(
                build_jobs.c.repository == repository, build_jobs.c.kind == "rebuild",
                build_jobs.c.state == "queued").order_by(build_jobs.c.id).limit(1)
        ).scalar_one_or_none()
        if queued is not None:
            return int(queued)
    new_id = conn.execute(sa.insert(build_jobs).values(
        repository=repository, kind=kind, reason=reason, state="queued", rebuild=rebuild,
        attempts=0, requested_by=requested_by, created_at=now, source_url=source_url,
        source_branch=source_branch, log="").returning(build_jobs.c.id)).scalar_one()
    return int(new_id)


class BuildStore:
    """The build queue on one :class:`Database`."""

    def __init__(self, db: Database, *, max_attempts: int = MAX_ATTEMPTS) -> None:
        self.db = db
        self.max_attempts = max_attempts

    # -- queueing -----------------------------------------------------------------------------
    def _enqueue(self, repository: str, kind: str, reason: str | None, requested_by: str,
                 rebuild: bool, source_url: str | None, source_branch: str | None
                 ) -> Any:
        def job(conn: sa.Connection, batch: Batch) -> int:
            return insert_job(conn, self.db.now(), repository, kind=kind, reason=reason,
                              requested_by=requested_by, rebuild=rebuild,
                              source_url=source_url, source_branch=source_branch)
        return job

    async def enqueue(self, repository: str, *, kind: str = "build", reason: str | None = None,
                      requested_by: str, rebuild: bool = False, source_url: str | None = None,
                      source_branch: str | None = None) -> int:
        """Queue a build of *repository* (from its registered source at its branch head);
        the job's id."""
        result: int = await self.db.write(self._enqueue(
            repository, kind, reason, requested_by, rebuild, source_url, source_branch))
        return result

    def enqueue_sync(self, repository: str, *, kind: str = "build", reason: str | None = None,
                     requested_by: str, rebuild: bool = False, source_url: str | None = None,
                     source_branch: str | None = None) -> int:
        result: int = self.db.write_sync(self._enqueue(
            repository, kind, reason, requested_by, rebuild, source_url, source_branch))
        return result

    # -- running ------------------------------------------------------------------------------
    def _claim(self, worker_id: str) -> Any:
        def job(conn: sa.Connection, batch: Batch) -> BuildJob | None:
            # never two jobs of one repository at once (they would race for a release)
            running = sa.select(build_jobs.c.repository).where(
                build_jobs.c.state == "running").scalar_subquery()
            picked = conn.execute(
                sa.select(build_jobs.c.id).where(build_jobs.c.state == "queued",
                                                 build_jobs.c.repository.not_in(running))
                .order_by(build_jobs.c.id).limit(1).with_for_update(skip_locked=True)
            ).scalar_one_or_none()
            if picked is None:
                return None
            now = self.db.now()
            conn.execute(sa.update(build_jobs).where(build_jobs.c.id == picked).values(
                state="running", attempts=build_jobs.c.attempts + 1, started_at=now,
                worker=worker_id, heartbeat_at=now, finished_at=None, error=None))
            row = conn.execute(_select().where(build_jobs.c.id == picked)).one()
            return _job(row)
        return job

    async def claim(self, worker_id: str) -> BuildJob | None:
        """Take the oldest queued job for *worker_id* (``running``, one more attempt) of a
        repository with no job running."""
        result: BuildJob | None = await self.db.write(self._claim(worker_id))
        return result

    def claim_sync(self, worker_id: str) -> BuildJob | None:
        result: BuildJob | None = self.db.write_sync(self._claim(worker_id))
        return result

    def _heartbeat(self, job_id: int, worker_id: str) -> Any:
        def job(conn: sa.Connection, batch: Batch) -> bool:
            done = conn.execute(sa.update(build_jobs).where(
                build_jobs.c.id == job_id, build_jobs.c.state == "running",
                build_jobs.c.worker == worker_id).values(heartbeat_at=self.db.now()))
            return bool(done.rowcount)
        return job

    async def heartbeat(self, job_id: int, worker_id: str) -> bool:
        """Say *worker_id* still runs the job; False if it is no longer its job."""
        result: bool = await self.db.write(self._heartbeat(job_id, worker_id), durable=False)
        return result

    def _append(self, job_id: int, text: str) -> Any:
        def job(conn: sa.Connection, batch: Batch) -> None:
            conn.execute(sa.update(build_jobs).where(build_jobs.c.id == job_id).values(
                log=build_jobs.c.log + text))
        return job

    async def append_log(self, job_id: int, text: str) -> None:
        """Add *text* to the job's log (readable at once by ``strata build logs``)."""
        if text:
            await self.db.write(self._append(job_id, text), durable=False)

    def append_log_sync(self, job_id: int, text: str) -> None:
        if text:
            self.db.write_sync(self._append(job_id, text), durable=False)

    def _source(self, job_id: int, url: str, branch: str | None, commit: str | None) -> Any:
        def job(conn: sa.Connection, batch: Batch) -> None:
            conn.execute(sa.update(build_jobs).where(build_jobs.c.id == job_id).values(
                source_url=url, source_branch=branch, source_commit=commit))
        return job

    async def set_source(self, job_id: int, url: str, branch: str | None,
                         commit: str | None) -> None:
        """Record what the job builds from (the branch head it cloned)."""
        await self.db.write(self._source(job_id, url, branch, commit))

    def _finish(self, job_id: int, state: str, result: BuildResult | None,
                error: str | None, worker_id: str | None) -> Any:
        if state not in ENDED:
            raise ValueError(f"a job ends succeeded, failed or dropped, not {state!r}")

        def job(conn: sa.Connection, batch: Batch) -> bool:
            cond = [build_jobs.c.id == job_id, build_jobs.c.state.in_(("queued", "running"))]
            if worker_id is not None:
                cond.append(build_jobs.c.worker == worker_id)
            values: dict[str, Any] = {"state": state, "finished_at": self.db.now(),
                                      "error": error}
            if result is not None:
                values.update({k: v for k, v in asdict(result).items() if v is not None})
            return bool(conn.execute(sa.update(build_jobs).where(*cond).values(**values))
                        .rowcount)
        return job

    async def finish(self, job_id: int, state: str, *, result: BuildResult | None = None,
                     error: str | None = None, worker_id: str | None = None) -> bool:
        """End a queued or running job (with *worker_id*: only if that worker still has it);
        False if it had already ended or moved to another worker."""
        done: bool = await self.db.write(self._finish(job_id, state, result, error, worker_id))
        return done

    def finish_sync(self, job_id: int, state: str, *, result: BuildResult | None = None,
                    error: str | None = None, worker_id: str | None = None) -> bool:
        done: bool = self.db.write_sync(self._finish(job_id, state, result, error, worker_id))
        return done

    def _requeue(self, stale_before: float | None, worker: str | None) -> Any:
        def job(conn: sa.Connection, batch: Batch) -> list[int]:
            cond = [build_jobs.c.state == "running"]
            if worker is not None:
                cond.append(build_jobs.c.worker == worker)
            if stale_before is not None:
                cond.append(sa.or_(build_jobs.c.heartbeat_at.is_(None),
                                   build_jobs.c.heartbeat_at < stale_before))
            rows = conn.execute(sa.select(build_jobs.c.id, build_jobs.c.attempts)
                                .where(*cond).order_by(build_jobs.c.id)
                                .with_for_update(skip_locked=True)).all()
            now = self.db.now()
            again = [int(r[0]) for r in rows if r[1] < self.max_attempts]
            spent = [int(r[0]) for r in rows if r[1] >= self.max_attempts]
            note = "\n[strata] interrupted (the runner stopped); "
            if again:
                conn.execute(sa.update(build_jobs).where(build_jobs.c.id.in_(again)).values(
                    state="queued", worker=None, heartbeat_at=None,
                    log=build_jobs.c.log + (note + "queued again\n")))
            if spent:
                conn.execute(sa.update(build_jobs).where(build_jobs.c.id.in_(spent)).values(
                    state="failed", finished_at=now, heartbeat_at=None,
                    error=f"interrupted {self.max_attempts} times; not retried",
                    log=build_jobs.c.log + (note + "attempts used up\n")))
            return again
        return job

    async def requeue_interrupted(self, *, stale_before: float | None = None,
                                  worker: str | None = None) -> list[int]:
        """Put jobs left ``running`` back in the queue (their ids); those that used every
        attempt fail instead. *stale_before*: only jobs whose heartbeat is older (a worker
        that died elsewhere); *worker*: only that runner's jobs (a server starting again);
        neither: every running job."""
        result: list[int] = await self.db.write(self._requeue(stale_before, worker))
        return result

    def requeue_interrupted_sync(self, *, stale_before: float | None = None,
                                 worker: str | None = None) -> list[int]:
        result: list[int] = self.db.write_sync(self._requeue(stale_before, worker))
        return result

    # -- reading ------------------------------------------------------------------------------
    async def any_queued(self) -> bool:
        """Whether some job waits (a read: runners poll with it, and claim -- a write
        transaction -- only when it says yes)."""
        def go(conn: sa.Connection) -> bool:
            return conn.execute(sa.select(build_jobs.c.id).where(
                build_jobs.c.state == "queued").limit(1)).first() is not None
        return await self.db.read(go)

    async def job(self, job_id: int) -> BuildJob | None:
        def go(conn: sa.Connection) -> BuildJob | None:
            row = conn.execute(_select().where(build_jobs.c.id == job_id)).first()
            return None if row is None else _job(row)
        return await self.db.read(go)

    async def jobs(self, where: JobFilter = JobFilter()) -> list[BuildJob]:
        """Jobs, newest first."""
        def go(conn: sa.Connection) -> list[BuildJob]:
            q = _select().order_by(build_jobs.c.id.desc()).limit(where.limit)
            if where.before is not None:
                q = q.where(build_jobs.c.id < where.before)
            if where.repository is not None:
                q = q.where(build_jobs.c.repository == where.repository)
            if where.namespace is not None:
                q = q.where(build_jobs.c.repository.startswith(where.namespace + "/",
                                                               autoescape=True))
            if where.state is not None:
                q = q.where(build_jobs.c.state == where.state)
            if where.kind is not None:
                q = q.where(build_jobs.c.kind == where.kind)
            return [_job(r) for r in conn.execute(q)]
        return await self.db.read(go)

    async def log(self, job_id: int, offset: int = 0) -> tuple[str, str] | None:
        """The job's log from character *offset* and its state (to follow a running
        build: ask again from ``offset + len(text)`` until the state has ended)."""
        def go(conn: sa.Connection) -> tuple[str, str] | None:
            row = conn.execute(sa.select(build_jobs.c.log, build_jobs.c.state)
                               .where(build_jobs.c.id == job_id)).first()
            if row is None:
                return None
            return str(row[0] or "")[offset:], str(row[1])
        return await self.db.read(go)

    async def built_on(self, base_repository: str,
                       base_tag: str | None = None) -> list[BuildJob]:
        """The newest succeeded job of each repository whose base was *base_repository*
        (at stream tag *base_tag*): the images a new base release leaves stale."""
        def go(conn: sa.Connection) -> list[BuildJob]:
            newest = (sa.select(sa.func.max(build_jobs.c.id))
                      .where(build_jobs.c.state == "succeeded")
                      .group_by(build_jobs.c.repository).scalar_subquery())
            q = _select().where(build_jobs.c.id.in_(newest),
                                build_jobs.c.base_repository == base_repository)
            if base_tag is not None:
                q = q.where(build_jobs.c.base_tag == base_tag)
            return [_job(r) for r in conn.execute(q.order_by(build_jobs.c.repository))]
        return await self.db.read(go)

    async def image_source(self, repository: str) -> tuple[str | None, str | None] | None:
        """The source (URL, branch) registered for an image; None for an unknown image."""
        def go(conn: sa.Connection) -> tuple[str | None, str | None] | None:
            row = conn.execute(sa.select(images.c.source_url, images.c.source_branch)
                               .where(images.c.repository == repository)).first()
            return None if row is None else (row[0], row[1])
        return await self.db.read(go)

    async def counts(self) -> dict[str, int]:
        """Jobs per state."""
        def go(conn: sa.Connection) -> dict[str, int]:
            rows = conn.execute(
                sa.select(build_jobs.c.state, sa.func.count().label("n"))
                .group_by(build_jobs.c.state)).mappings().all()
            return {str(r["state"]): int(r["n"]) for r in rows}
        return await self.db.read(go)
