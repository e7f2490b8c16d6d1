"""SQL of the rebuild loop (issue 14), on top of :class:`strata.meta.database.Database`.

* :func:`record_inputs`: what a registered build was built from (``candidate_inputs``).
* :func:`stale_images`: active images whose latest build's base stream tag now points to
  another digest than the one they were built on; with ``bases``, only those built on the
  given (repository, tag) streams -- the dependants of a release that moved them.
* :func:`queue_dependants`: inside the transaction that published a release, queue a rebuild
  (``build_jobs``, :func:`strata.meta.build_store.insert_job`, ``kind="rebuild"``) of every
  active image with a registered source whose base stream that release moved; and
  :func:`queue_prerelease`: every active image with a registered source, once per scheduled
  release of a namespace with ``--rebuild-days-before``.
* :func:`current_references`: the repository's current candidate and current release, with
  their inputs (an unchanged rebuild is one that repeats either).
* :func:`rebuild_notes`: per released build, the base and package changes against the build
  its repository had released before, for the release notes.

The module-level functions take the caller's connection, so a release's writer can run them
in its own transaction; :class:`RebuildStore` runs them on the ``Database``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa

from strata.meta import search_sql
from strata.meta.build_store import insert_job
from strata.meta.conflicts import insert_new
from strata.meta.database import Database
from strata.meta.schema_build import build_jobs
from strata.meta.schema_rebuild import candidate_inputs, namespace_rebuilds
from strata.meta.schema_registry import repositories, tags
from strata.meta.schema_release import candidates, images, namespaces, releases, tag_events
from strata.release.rebuild import BuildInputs, Package, Reference, StaleImage, rebuild_note

T = TypeVar("T")

__all__ = ["PendingRebuild", "RebuildStore", "Schedule", "current_references", "queue_dependants",
           "queue_prerelease", "rebuild_notes", "record_inputs", "stale_images"]

REBUILD_ACTOR = "rebuild-loop"
_LIVE = ("candidate", "released")  # a withdrawn build is nobody's latest


@dataclass(frozen=True)
class PendingRebuild:
    """A rebuild job not yet finished (``strata release plan`` lists them)."""

    id: int
    repository: str
    state: str
    reason: str | None
    created_at: float

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "repository": self.repository, "state": self.state,
                "reason": self.reason, "created_at": self.created_at}


def _inputs(row: Any) -> BuildInputs:
    packages = tuple(Package(str(p[0]), str(p[1]), str(p[2]))
                     for p in json.loads(row.packages or "[]"))
    return BuildInputs(row.source_url, row.source_commit, row.base_repository, row.base_tag,
                       row.base_digest, packages, row.packages_digest, row.record_digest)


# -- recording ---------------------------------------------------------------------------------
def record_inputs(conn: sa.Connection, repository: str, digest: str, inputs: BuildInputs,
                  at: float) -> None:
    """Record what build ``repository@digest`` was built from (kept if already recorded: a
    registration repeated answers the build as it was)."""
    conn.execute(insert_new(candidate_inputs).values(
        repository=repository, digest=digest, source_url=inputs.source_url,
        source_commit=inputs.source_commit, base_repository=inputs.base_repository,
        base_tag=inputs.base_tag, base_digest=inputs.base_digest,
        packages_digest=inputs.packages_digest, record_digest=inputs.record_digest,
        packages=json.dumps([[p.name, p.version, p.arch] for p in inputs.packages],
                            separators=(",", ":")),
        created_at=at))
    search_sql.record_packages(conn, repository, digest,
                               ((p.name, p.version, p.arch) for p in inputs.packages))


def inputs_of(conn: sa.Connection, repository: str, digest: str) -> BuildInputs | None:
    c = candidate_inputs.c
    row = conn.execute(sa.select(candidate_inputs).where(
        c.repository == repository, c.digest == digest)).first()
    return None if row is None else _inputs(row)


# -- what is current ---------------------------------------------------------------------------
def _with_inputs(conn: sa.Connection, where: Sequence[sa.ColumnElement[bool]]) -> list[Any]:
    b, i = candidates.c, candidate_inputs.c
    q = (sa.select(b.repository, b.digest, b.name, b.version, b.release, b.status, b.id,
                   candidate_inputs)
         .select_from(candidates.join(candidate_inputs, sa.and_(
             i.repository == b.repository, i.digest == b.digest)))
         .where(*where))
    return list(conn.execute(q))


def _nvr(row: Any) -> str:
    return f"{row.name}-{row.version}-{row.release}"


def current_references(conn: sa.Connection, repository: str) -> list[Reference]:
    """The repository's newest pending candidate and newest released build that recorded
    their inputs (what a rebuild is compared with)."""
    out = []
    for status in _LIVE:
        b = candidates.c
        newest = sa.select(sa.func.max(b.id)).where(
            b.repository == repository, b.status == status).scalar_subquery()
        rows = _with_inputs(conn, [b.id == newest])
        out += [Reference(_nvr(row), row.digest, row.status, _inputs(row)) for row in rows]
    return out


def _tag_digest(conn: sa.Connection, repository: str, tag: str) -> str | None:
    row = conn.execute(sa.select(tags.c.digest).select_from(
        tags.join(repositories, repositories.c.id == tags.c.repository_id)).where(
            repositories.c.name == repository, tags.c.name == tag)).first()
    return None if row is None else str(row[0])


def _nvrs_of(conn: sa.Connection, pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Registered NVRs of (repository, digest) pairs, by digest."""
    out: dict[str, str] = {}
    for repository, digest in set(pairs):
        row = conn.execute(sa.select(candidates.c.name, candidates.c.version,
                                     candidates.c.release).where(
            candidates.c.repository == repository, candidates.c.digest == digest)).first()
        if row is not None:
            out[digest] = _nvr(row)
    return out


def _latest(conn: sa.Connection, namespace: str | None,
            repository: str | None = None) -> list[Any]:
    """Per active image (of ``namespace``), its newest live build, if that build recorded
    its inputs; rows carry the image's source too."""
    b, img = candidates.c, images.c
    newest = (sa.select(sa.func.max(b.id)).where(b.status.in_(_LIVE))
              .group_by(b.repository))
    where: list[sa.ColumnElement[bool]] = [b.id.in_(newest)]
    if repository is not None:
        where.append(b.repository == repository)
    rows = _with_inputs(conn, where)
    active = sa.select(img.repository, img.namespace, img.source_url, img.source_branch).where(
        img.status == "active")
    if namespace is not None:
        active = active.where(img.namespace == namespace)
    source = {str(r.repository): r for r in conn.execute(active)}
    return [(row, source[row.repository]) for row in rows if row.repository in source]


def stale_images(conn: sa.Connection, namespace: str | None = None, *,
                 bases: Iterable[tuple[str, str]] | None = None) -> list[StaleImage]:
    """Active images (of ``namespace``) whose latest build was built on a base stream tag that
    now points to another digest; with ``bases``, only those built on one of these streams."""
    wanted = None if bases is None else set(bases)
    found: list[tuple[Any, str | None]] = []
    heads: dict[tuple[str, str], str | None] = {}
    for row, _ in _latest(conn, namespace):
        if row.base_repository is None or row.base_tag is None:
            continue
        key = (str(row.base_repository), str(row.base_tag))
        if wanted is not None and key not in wanted:
            continue
        if key not in heads:
            heads[key] = _tag_digest(conn, *key)
        now = heads[key]
        if now is not None and now != row.base_digest:
            found.append((row, now))
    nvrs = _nvrs_of(conn, [(row.base_repository, d) for row, now in found
                           for d in (row.base_digest, now) if d is not None])
    return [StaleImage(row.repository, _nvr(row), row.digest, row.base_repository,
                       row.base_tag, row.base_digest, nvrs.get(row.base_digest), now,
                       nvrs.get(now or ""))
            for row, now in sorted(found, key=lambda x: str(x[0].repository))]


# -- queueing rebuilds -------------------------------------------------------------------------
def _sources(conn: sa.Connection, repos: Iterable[str]) -> dict[str, tuple[str, str | None]]:
    names = sorted(set(repos))
    if not names:
        return {}
    rows = conn.execute(sa.select(images.c.repository, images.c.source_url,
                                  images.c.source_branch).where(
        images.c.repository.in_(names), images.c.status == "active",
        images.c.source_url.is_not(None)))
    return {str(r.repository): (str(r.source_url), r.source_branch) for r in rows}


def _queue(conn: sa.Connection, at: float, reasons: dict[str, str],
           requested_by: str) -> list[int]:
    sources = _sources(conn, reasons)
    return [insert_job(conn, at, repository, kind="rebuild", reason=reasons[repository],
                       requested_by=requested_by, rebuild=True, source_url=url,
                       source_branch=branch)
            for repository, (url, branch) in sorted(sources.items())]


def moved_streams(conn: sa.Connection, release_name: str) -> set[tuple[str, str]]:
    """Every (repository, tag) a published release moved."""
    c = tag_events.c
    rows = conn.execute(sa.select(c.repository, c.tag).where(c.release_name == release_name))
    return {(str(r.repository), str(r.tag)) for r in rows}


def queue_dependants(conn: sa.Connection, release_name: str, at: float,
                     requested_by: str = REBUILD_ACTOR) -> list[int]:
    """Queue a rebuild of every active image (with a registered source) whose latest build
    was built on a stream tag ``release_name`` moved; the job ids (a repository with a rebuild
    already queued is asked once)."""
    moved = moved_streams(conn, release_name)
    if not moved:
        return []
    reasons = {}
    for image in stale_images(conn, bases=moved):
        reasons[image.repository] = (
            f"base {image.base_repository}:{image.base_tag} moved in {release_name}: "
            f"{image.built_on_nvr or image.built_on} -> {image.now_nvr or image.now}")
    return _queue(conn, at, reasons, requested_by)


def queue_prerelease(conn: sa.Connection, namespace: str, day: dt.date, release_name: str,
                     at: float, requested_by: str = REBUILD_ACTOR) -> list[int] | None:
    """Queue a rebuild of every active image of ``namespace`` with a registered source, for
    the scheduled release of ``day`` -- once: None if they were already queued for it."""
    c = namespace_rebuilds.c
    done = conn.execute(sa.update(namespace_rebuilds).where(
        c.namespace == namespace, sa.or_(c.queued_for.is_(None),
                                         c.queued_for < day.isoformat())).values(
        queued_for=day.isoformat()))
    if done.rowcount != 1:
        return None
    repos = conn.execute(sa.select(images.c.repository).where(
        images.c.namespace == namespace, images.c.status == "active"))
    reasons = {str(r[0]): f"rebuild before scheduled release {release_name} (updated packages)"
               for r in repos}
    return _queue(conn, at, reasons, requested_by)


def pending_rebuilds(conn: sa.Connection, namespace: str | None = None) -> list[PendingRebuild]:
    """Rebuild jobs queued or running (of ``namespace``), oldest first."""
    j = build_jobs.c
    q = sa.select(j.id, j.repository, j.state, j.reason, j.created_at).where(
        j.kind == "rebuild", j.state.in_(("queued", "running"))).order_by(j.id)
    if namespace is not None:
        q = q.where(j.repository.in_(sa.select(images.c.repository).where(
            images.c.namespace == namespace)))
    return [PendingRebuild(int(r.id), str(r.repository), str(r.state), r.reason,
                           float(r.created_at)) for r in conn.execute(q)]


# -- namespace settings ------------------------------------------------------------------------
def days_before(conn: sa.Connection) -> dict[str, int]:
    """``--rebuild-days-before`` of every namespace that has it."""
    c = namespace_rebuilds.c
    rows = conn.execute(sa.select(c.namespace, c.days_before).where(c.days_before.is_not(None)))
    return {str(r.namespace): int(r.days_before) for r in rows}


@dataclass(frozen=True)
class Schedule:
    """What a namespace's pre-release rebuilds need: its schedule and its setting."""

    namespace: str
    anchor: dt.date
    interval_days: int
    last_scheduled: dt.date | None
    days_before: int


def schedules(conn: sa.Connection) -> list[Schedule]:
    """The schedule of every namespace with ``--rebuild-days-before``."""
    n, s, r = namespaces.c, namespace_rebuilds.c, releases.c
    last = (sa.select(sa.func.max(r.scheduled_for)).where(
        r.namespace == n.name, r.kind == "scheduled", r.status == "published")
        .scalar_subquery())
    rows = conn.execute(sa.select(n.name, n.anchor, n.interval_days, s.days_before,
                                  last.label("last")).select_from(
        namespaces.join(namespace_rebuilds, s.namespace == n.name)).where(
        s.days_before.is_not(None)).order_by(n.name))
    return [Schedule(str(row.name), dt.date.fromisoformat(row.anchor), int(row.interval_days),
                     dt.date.fromisoformat(row.last) if row.last else None,
                     int(row.days_before)) for row in rows]


def set_days_before(conn: sa.Connection, namespace: str, days: int | None) -> None:
    c = namespace_rebuilds.c
    conn.execute(insert_new(namespace_rebuilds).values(namespace=namespace))
    conn.execute(sa.update(namespace_rebuilds).where(c.namespace == namespace).values(
        days_before=days))


def namespace_exists(conn: sa.Connection, namespace: str) -> bool:
    return conn.execute(sa.select(namespaces.c.name).where(
        namespaces.c.name == namespace)).first() is not None


# -- release notes -----------------------------------------------------------------------------
def rebuild_notes(conn: sa.Connection, builds: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Per repository, what its released build (repository, digest) changed against the
    newest build of the repository released before it: base and packages (see
    :func:`strata.release.rebuild.rebuild_note`). Run before the builds are marked released."""
    out: dict[str, Any] = {}
    for repository, digest in builds:
        current = inputs_of(conn, repository, digest)
        if current is None:
            continue
        b = candidates.c
        newest = sa.select(sa.func.max(b.id)).where(
            b.repository == repository, b.status == "released",
            b.digest != digest).scalar_subquery()
        rows = _with_inputs(conn, [b.id == newest])
        previous = _inputs(rows[0]) if rows else None
        base = current.base_repository or (previous.base_repository if previous else None)
        digests = [d for d in (current.base_digest,
                               previous.base_digest if previous else None) if d]
        nvrs = _nvrs_of(conn, [(base, d) for d in digests]) if base else {}
        note = rebuild_note(previous, current, nvrs)
        if note is not None:
            out[repository] = note
    return out


class RebuildStore:
    """The rebuild loop's way to the database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def now(self) -> float:
        return self.db.now()

    def today(self) -> dt.date:
        return self.db.today()

    async def read(self, fn: Callable[[sa.Connection], T]) -> T:
        return await self.db.read(fn)

    async def write(self, fn: Callable[[sa.Connection], T]) -> T:
        return await self.db.write(lambda conn, _batch: fn(conn))

    async def record_inputs(self, repository: str, digest: str, inputs: BuildInputs) -> None:
        await self.write(lambda conn: record_inputs(conn, repository, digest, inputs,
                                                    self.now()))

    async def inputs_of(self, repository: str, digest: str) -> BuildInputs | None:
        return await self.read(lambda conn: inputs_of(conn, repository, digest))

    async def inputs_of_many(self, pairs: Sequence[tuple[str, str]]
                             ) -> dict[tuple[str, str], BuildInputs]:
        def go(conn: sa.Connection) -> dict[tuple[str, str], BuildInputs]:
            found = {}
            for repository, digest in pairs:
                inputs = inputs_of(conn, repository, digest)
                if inputs is not None:
                    found[(repository, digest)] = inputs
            return found
        return await self.read(go)

    async def current_references(self, repository: str) -> list[Reference]:
        return await self.read(lambda conn: current_references(conn, repository))

    async def stale(self, namespace: str | None = None) -> list[StaleImage]:
        return await self.read(lambda conn: stale_images(conn, namespace))

    async def pending(self, namespace: str | None = None) -> list[PendingRebuild]:
        return await self.read(lambda conn: pending_rebuilds(conn, namespace))

    async def queue_dependants(self, release_name: str) -> list[int]:
        return await self.write(lambda conn: queue_dependants(conn, release_name, self.now()))

    async def queue_prerelease(self, namespace: str, day: dt.date,
                               release_name: str) -> list[int] | None:
        return await self.write(lambda conn: queue_prerelease(
            conn, namespace, day, release_name, self.now()))

    async def days_before(self) -> dict[str, int]:
        return await self.read(days_before)

    async def schedules(self) -> list[Schedule]:
        return await self.read(schedules)

    async def set_days_before(self, namespace: str, days: int | None) -> bool:
        """False if the namespace does not exist."""
        def go(conn: sa.Connection) -> bool:
            if not namespace_exists(conn, namespace):
                return False
            set_days_before(conn, namespace, days)
            return True
        return await self.write(go)
