"""Garbage collection in SQL: what no tag, index or live subject refers to any more.

Each step is one short transaction, so pushes and pulls go on while a collection runs:

1. per repository: manifests that are not tagged, not a child of a live index, not a referrer
   of a live manifest and older than the grace cutoff go; then blob links that no remaining
   manifest references and that nobody created or asked for since the cutoff;
2. blobs with no link left and older than the cutoff go — row and bytes together, the bytes
   removed inside the transaction (see ``RegistryStore.finish_upload`` for why);
3. files in the blob store with no row (left by a crash between placing bytes and recording
   them) go once they are older than the cutoff.

On SQLite each step holds the data dir's write lock, so no write interleaves with it. On
PostgreSQL writes go on during a step, and each step takes what the lock gave for free:

- a repository sweep holds the repository row FOR UPDATE; every write into a repository holds
  it FOR KEY SHARE (``RegistryStore._ensure_repo``), so the sweep and the repository's writes
  take turns (a push tagging an old untagged manifest is never half-seen);
- the blob sweep repeats its conditions in the DELETE and removes the bytes of the rows it
  actually deleted: a write that links a blob touches its row first (``finish_upload``,
  ``mount_blob``), so the DELETE waits for it and then finds the row too young;
- the orphan-file sweep locks ``blobs`` against writers (SHARE mode) while it looks: a row
  being inserted for bytes already placed is committed before it looks, never missed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

import sqlalchemy as sa

from strata.meta import schema_registry as t
from strata.meta import schema_release as rt
from strata.meta.database import Batch, Database

T = TypeVar("T")


@dataclass
class RepositorySweep:
    repository: str
    manifests: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)


class SqlGarbageStore:
    """Every step runs on a worker thread (:meth:`Database.offload` / :meth:`Database.read`):
    a sweep may wait for the write lock or unlink many files, and a collector running inside
    ``strata serve`` must not stall the worker's requests. A sweep is a write transaction of
    its own (:meth:`Database.write_sync`), never part of a group commit: the bytes it removes
    go with its rows, whatever another writer's job does."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def repositories(self) -> list[tuple[int, str]]:
        def go(conn: sa.Connection) -> list[tuple[int, str]]:
            rows = conn.execute(sa.select(t.repositories.c.id, t.repositories.c.name)
                                .order_by(t.repositories.c.name)).all()
            return [(int(r[0]), str(r[1])) for r in rows]
        return await self._db.read(go)

    async def sweep_repository(self, rid: int, name: str, cutoff: float,
                               dry_run: bool) -> RepositorySweep:
        def go(conn: sa.Connection, _batch: Batch) -> RepositorySweep:
            # FOR UPDATE (PostgreSQL): wait for the repository's writes in flight, hold
            # off new ones until this sweep commits.
            conn.execute(sa.select(t.repositories.c.id).where(
                t.repositories.c.id == rid).with_for_update())
            sweep = _sweep(conn, rid, name, cutoff)
            if not dry_run:
                _apply(conn, rid, sweep, cutoff)
            return sweep
        return await self._db.offload(self._db.write_sync, go)

    async def simulate(self, cutoff: float) -> tuple[list[RepositorySweep], list[tuple[str, int]]]:
        """A dry run, in one read-only transaction: every repository's sweep, and the blobs
        that would be left with no link once their sweeps removed theirs (nothing written, so
        it also runs on a database opened read-only)."""
        def go(conn: sa.Connection) -> tuple[list[RepositorySweep], list[tuple[str, int]]]:
            repos = conn.execute(sa.select(t.repositories.c.id, t.repositories.c.name)
                                 .order_by(t.repositories.c.name)).all()
            sweeps = [_sweep(conn, int(rid), str(name), cutoff) for rid, name in repos]
            removed = {(int(rid), d) for (rid, _), sweep in zip(repos, sweeps, strict=True)
                       for d in sweep.links}
            still_linked = {str(r[1]) for r in conn.execute(sa.select(
                t.repository_blobs.c.repository_id, t.repository_blobs.c.digest))
                if (int(r[0]), str(r[1])) not in removed}
            old = conn.execute(sa.select(t.blobs.c.digest, t.blobs.c.size).where(
                t.blobs.c.created_at < cutoff).order_by(t.blobs.c.digest)).all()
            return sweeps, [(str(d), int(size)) for d, size in old if str(d) not in still_linked]
        return await self._db.read(go)

    async def sweep_blobs(self, cutoff: float, dry_run: bool,
                          remove: Callable[[str], None]) -> list[tuple[str, int]]:
        """Delete unlinked blobs older than ``cutoff``; ``remove`` deletes the bytes."""
        def go(conn: sa.Connection, _batch: Batch) -> list[tuple[str, int]]:
            gone = _unlinked_blobs(conn, cutoff)
            if not dry_run and gone:
                kept: set[str] = set()
                for chunk in _chunks([d for d, _ in gone], 500):
                    kept |= _delete_unlinked(conn, chunk, cutoff)
                gone = [(d, size) for d, size in gone if d not in kept]
                for digest, _ in gone:
                    remove(digest)
            return gone
        return await self._db.offload(self._db.write_sync, go)

    async def sweep_orphan_files(self, candidates: list[tuple[str, int]], dry_run: bool,
                                 remove: Callable[[str], None]) -> list[tuple[str, int]]:
        """Of files (digest, size) old enough to go, delete those with no blob row."""
        # A dry run only looks, in a read-only transaction; the lock is for deleting.
        lock = self._db.dialect == "postgresql" and not dry_run

        def go(conn: sa.Connection, _batch: Batch) -> list[tuple[str, int]]:
            gone: list[tuple[str, int]] = []
            if lock:
                # Wait for blob writes in flight, hold off new ones: a row being recorded
                # for bytes already placed must be visible before they are judged.
                conn.exec_driver_sql("LOCK TABLE blobs IN SHARE MODE")
            for chunk in _chunks(candidates, 500):
                known = {r[0] for r in conn.execute(sa.select(t.blobs.c.digest).where(
                    t.blobs.c.digest.in_([d for d, _ in chunk])))}
                for digest, size in chunk:
                    if digest not in known:
                        gone.append((digest, size))
                        if not dry_run:
                            remove(digest)
            return gone
        if dry_run:
            return await self._db.read(lambda conn: go(conn, Batch()))
        return await self._db.offload(self._db.write_sync, go)


def _unlinked(cutoff: float) -> sa.ColumnElement[bool]:
    linked = sa.select(t.repository_blobs.c.digest).where(
        t.repository_blobs.c.digest == t.blobs.c.digest).exists()
    return sa.and_(~linked, t.blobs.c.created_at < cutoff)


def _unlinked_blobs(conn: sa.Connection, cutoff: float) -> list[tuple[str, int]]:
    rows = conn.execute(sa.select(t.blobs.c.digest, t.blobs.c.size).where(
        _unlinked(cutoff)).order_by(t.blobs.c.digest)).all()
    return [(str(r[0]), int(r[1])) for r in rows]


def _delete_unlinked(conn: sa.Connection, digests: list[str], cutoff: float) -> set[str]:
    """Delete those of ``digests`` that are still unlinked and old; returns those kept.

    On PostgreSQL a write may have touched a row since it was selected: the DELETE waits for
    it, re-checks the age on the row as committed and skips it. The rows still there after
    the DELETE are the ones it skipped (a plain SELECT: no RETURNING needed, any SQLite).
    """
    conn.execute(sa.delete(t.blobs).where(t.blobs.c.digest.in_(digests), _unlinked(cutoff)))
    return {str(r[0]) for r in conn.execute(
        sa.select(t.blobs.c.digest).where(t.blobs.c.digest.in_(digests)))}


def _chunks(items: list[T], n: int) -> Iterable[list[T]]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


def _live(rid: int, name: str, cutoff: float) -> sa.CTE:
    """The repository's live manifests, as a recursive query: tagged ones, registered builds
    (release candidates are untagged until released; withdrawn ones go like any untagged
    manifest) and those younger than the cutoff; then, repeatedly, the children of a live
    index and the referrers of a live manifest. The database walks the graph: a collection's
    memory is what it removes, not the repository's size (issue #18: the serving worker's
    heap grew with every collection as the soak's repositories grew)."""
    seeds = sa.union(
        sa.select(t.tags.c.digest.label("digest")).where(t.tags.c.repository_id == rid),
        sa.select(rt.candidates.c.digest).where(
            rt.candidates.c.repository == name,
            rt.candidates.c.status.in_(("candidate", "released"))),
        sa.select(t.manifests.c.digest).where(t.manifests.c.repository_id == rid,
                                              t.manifests.c.created_at >= cutoff),
    ).subquery("seeds")
    live = sa.select(seeds.c.digest).cte("live", recursive=True)
    edges = sa.union_all(
        sa.select(t.manifest_references.c.parent.label("via"),
                  t.manifest_references.c.child.label("digest")).where(
            t.manifest_references.c.repository_id == rid,
            t.manifest_references.c.is_manifest.is_(True)),
        sa.select(t.manifests.c.subject, t.manifests.c.digest).where(
            t.manifests.c.repository_id == rid, t.manifests.c.subject.is_not(None)),
    ).subquery("edges")
    return live.union(sa.select(edges.c.digest).join_from(
        live, edges, edges.c.via == live.c.digest))


def _sweep(conn: sa.Connection, rid: int, name: str, cutoff: float) -> RepositorySweep:
    # Anti-joins written as LEFT JOIN ... IS NULL against whole sets, never NOT IN a
    # subquery (PostgreSQL runs that as a hashed lookup only while the set fits work_mem, and
    # otherwise rescans it for every row: 170 s for a 100,000-manifest repository) nor a
    # correlated NOT EXISTS over the recursive set (rescanned per row too).
    m = t.manifests
    live = _live(rid, name, cutoff)
    dead = conn.execute(sa.select(m.c.digest).join_from(
        m, live, live.c.digest == m.c.digest, isouter=True).where(
        m.c.repository_id == rid, live.c.digest.is_(None))
        .order_by(m.c.digest)).scalars().all()
    refs, rb = t.manifest_references, t.repository_blobs
    used = (sa.select(refs.c.child.label("digest")).distinct()
            .join_from(refs, live, live.c.digest == refs.c.parent)
            .join(m, sa.and_(m.c.repository_id == rid, m.c.digest == refs.c.parent))
            .where(refs.c.repository_id == rid, refs.c.is_manifest.is_(False))
            .cte("used"))
    links = conn.execute(sa.select(rb.c.digest).join_from(
        rb, used, used.c.digest == rb.c.digest, isouter=True).where(
        rb.c.repository_id == rid, rb.c.created_at < cutoff, rb.c.touched_at < cutoff,
        used.c.digest.is_(None)).order_by(rb.c.digest)).scalars().all()
    return RepositorySweep(name, [str(d) for d in dead], [str(d) for d in links])


def _apply(conn: sa.Connection, rid: int, sweep: RepositorySweep, cutoff: float) -> None:
    # The age conditions are repeated in the DELETEs: on PostgreSQL a concurrent push that
    # touched a row makes the DELETE re-check it and leave it alone.
    for chunk in _chunks(sweep.manifests, 500):
        conn.execute(sa.delete(t.manifest_references).where(
            t.manifest_references.c.repository_id == rid,
            t.manifest_references.c.parent.in_(chunk)))
        conn.execute(sa.delete(t.manifests).where(
            t.manifests.c.repository_id == rid, t.manifests.c.digest.in_(chunk),
            t.manifests.c.created_at < cutoff))
    for chunk in _chunks(sweep.links, 500):
        conn.execute(sa.delete(t.repository_blobs).where(
            t.repository_blobs.c.repository_id == rid, t.repository_blobs.c.digest.in_(chunk),
            t.repository_blobs.c.touched_at < cutoff, t.repository_blobs.c.created_at < cutoff))
