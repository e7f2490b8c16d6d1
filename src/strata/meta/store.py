"""SqlMetaStore: the registry's metadata on SQLAlchemy Core (SQLite or PostgreSQL).

Every method is one short transaction. Methods are ``async``: on SQLite they run inline (each is
well under a millisecond and SQLite holds no network round trip); on PostgreSQL they run on a
worker thread so the event loop never waits on the network.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa

from strata.errors import Code, RegistryError
from strata.meta import schema as t
from strata.meta.conflicts import insert_new
from strata.meta.fastread import CompiledSql, FastReader, run, run_many
from strata.meta.groupcommit import Batch, GroupWriter, Job
from strata.meta.records import (
    HoldCheck,
    ManifestRecord,
    Reference,
    Referrer,
    TagCheck,
    UploadRecord,
)
from strata.meta.tagwrite import holders, is_managed, record_tag_event, write_tag

T = TypeVar("T")


# The statements of the write transactions, built once per dialect on first use and run on the
# driver (``fastread.run``). The hot reads, compiled in ``SqlMetaStore.__init__``, run through
# ``FastReader`` on a connection of their own.

def _q_repo_held() -> sa.ClauseElement:
    # Writers hold the repository row FOR KEY SHARE (PostgreSQL; SQLite has one writer):
    # compatible with each other, and it makes a garbage collection of the repository
    # (FOR UPDATE) wait for them and them wait for it, as the write lock does on SQLite.
    return sa.select(t.repositories.c.id).where(
        t.repositories.c.name == sa.bindparam("repo")).with_for_update(read=True, key_share=True)


def _w_repo_add() -> sa.ClauseElement:
    return insert_new(t.repositories).values(name=sa.bindparam("repo"),
                                             created_at=sa.bindparam("now"))


def _w_blob_touch() -> sa.ClauseElement:
    return sa.update(t.blobs).where(t.blobs.c.digest == sa.bindparam("d")).values(
        created_at=sa.bindparam("now"))


def _w_blob_add() -> sa.ClauseElement:
    return insert_new(t.blobs).values(digest=sa.bindparam("d"), size=sa.bindparam("size"),
                                      created_at=sa.bindparam("now"))


def _w_link_touch() -> sa.ClauseElement:
    return sa.update(t.repository_blobs).where(
        t.repository_blobs.c.repository_id == sa.bindparam("rid"),
        t.repository_blobs.c.digest == sa.bindparam("d")).values(touched_at=sa.bindparam("now"))


def _w_link_add() -> sa.ClauseElement:
    return insert_new(t.repository_blobs).values(
        repository_id=sa.bindparam("rid"), digest=sa.bindparam("d"),
        created_at=sa.bindparam("now"), touched_at=sa.bindparam("now"))


def _q_manifest_exists() -> sa.ClauseElement:
    # FOR KEY SHARE (PostgreSQL): a manifest a push tags or refers to cannot be deleted
    # (delete_manifest locks it FOR UPDATE) until the push commits, and one being deleted is
    # waited for and then found gone.
    return sa.select(t.manifests.c.digest).where(
        t.manifests.c.repository_id == sa.bindparam("rid"),
        t.manifests.c.digest == sa.bindparam("digest")).with_for_update(read=True,
                                                                         key_share=True)


def _w_manifest_add() -> sa.ClauseElement:
    return insert_new(t.manifests).values(
        repository_id=sa.bindparam("rid"), digest=sa.bindparam("digest"),
        media_type=sa.bindparam("media_type"), size=sa.bindparam("size"),
        content=sa.bindparam("content"), artifact_type=sa.bindparam("artifact_type"),
        subject=sa.bindparam("subject"), annotations=sa.bindparam("annotations"),
        created_at=sa.bindparam("now"))


def _w_upload_drop() -> sa.ClauseElement:
    return sa.delete(t.uploads).where(t.uploads.c.id == sa.bindparam("id"))


def _w_upload_add() -> sa.ClauseElement:
    # Run on the driver: its rowcount tells whether the row was inserted (SQLAlchemy's result
    # has no reliable rowcount for an INSERT; on psycopg it is -1).
    return insert_new(t.uploads).values(
        id=sa.bindparam("id"), repository=sa.bindparam("repo"), size=sa.bindparam("size"),
        created_at=sa.bindparam("now"), updated_at=sa.bindparam("now"))


def _w_upload_open() -> sa.ClauseElement:
    return sa.insert(t.uploads).values(
        id=sa.bindparam("id"), repository=sa.bindparam("repo"), size=sa.bindparam("zero"),
        created_at=sa.bindparam("now"), updated_at=sa.bindparam("now"),
        account=sa.bindparam("account"))


def _q_upload_count() -> sa.ClauseElement:
    u = t.uploads
    return sa.select(sa.func.count()).select_from(u).where(
        u.c.account == sa.bindparam("account"), u.c.updated_at >= sa.bindparam("stale"),
        sa.or_(u.c.size > sa.bindparam("zero"), u.c.updated_at >= sa.bindparam("idle")))


def _w_reference_add() -> sa.ClauseElement:
    return sa.insert(t.manifest_references).values(
        repository_id=sa.bindparam("rid"), parent=sa.bindparam("parent"),
        child=sa.bindparam("child"), is_manifest=sa.bindparam("is_manifest"))


def _manifest_select() -> sa.Select[Any]:
    return sa.select(t.manifests.c.digest, t.manifests.c.media_type, t.manifests.c.size,
                     t.manifests.c.content, t.manifests.c.artifact_type, t.manifests.c.subject,
                     t.manifests.c.annotations, t.manifests.c.created_at)


class SqlMetaStore:
    def __init__(self, engine: sa.Engine, *, clock: Callable[[], float] = time.time,
                 touch_interval: float = 300.0) -> None:
        self.engine = engine
        self._inline = engine.dialect.name == "sqlite"
        self._clock = clock
        self._touch_interval = touch_interval
        self._fast = FastReader(engine)
        self._writes = GroupWriter(engine)
        self._q_tag = CompiledSql(engine, _manifest_select().select_from(
            t.tags.join(t.repositories).join(t.manifests, sa.and_(
                t.manifests.c.repository_id == t.tags.c.repository_id,
                t.manifests.c.digest == t.tags.c.digest)))
            .where(t.repositories.c.name == sa.bindparam("repo"),
                   t.tags.c.name == sa.bindparam("tag")))
        self._q_manifest = CompiledSql(engine, _manifest_select().select_from(
            t.manifests.join(t.repositories))
            .where(t.repositories.c.name == sa.bindparam("repo"),
                   t.manifests.c.digest == sa.bindparam("digest")))
        self._q_blob = CompiledSql(engine, sa.select(
            t.blobs.c.size, t.repository_blobs.c.touched_at, t.repository_blobs.c.repository_id)
            .select_from(t.repository_blobs.join(t.repositories).join(
                t.blobs, t.blobs.c.digest == t.repository_blobs.c.digest))
            .where(t.repositories.c.name == sa.bindparam("repo"),
                   t.repository_blobs.c.digest == sa.bindparam("digest")))
        self._q_repo = CompiledSql(engine, sa.select(t.repositories.c.id).where(
            t.repositories.c.name == sa.bindparam("repo")))
        self._q_upload = CompiledSql(engine, sa.select(
            t.uploads.c.id, t.uploads.c.repository, t.uploads.c.size, t.uploads.c.created_at,
            t.uploads.c.updated_at, t.uploads.c.account).where(
                t.uploads.c.id == sa.bindparam("id")))

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        """A read: inline on SQLite (microseconds), on a worker thread on PostgreSQL."""
        if self._inline:
            return fn(*args)
        return await asyncio.to_thread(fn, *args)

    def close(self) -> None:
        """Stop the writer thread (writes queued before are committed first)."""
        self._writes.close()

    async def _tx(self, fn: Job[T]) -> T:
        """A write, never on the event loop thread: ``fn(conn, batch)`` inside a transaction.

        On SQLite one writer thread per process runs them under an exclusive ``flock`` shared
        by every process on the data dir (writers queue in the kernel instead of polling
        SQLite's busy handler), and writes queued meanwhile share one commit (group commit,
        see ``meta.groupcommit``); the result is returned once the commit is durable.
        """
        return await self._writes.run(fn)

    def _read(self) -> sa.Connection:
        return self.engine.connect().execution_options(readonly=True)

    # -- repositories -------------------------------------------------------------------
    @staticmethod
    def _repo_id(conn: sa.Connection, name: str) -> int | None:
        row = conn.execute(
            sa.select(t.repositories.c.id).where(t.repositories.c.name == name)
        ).first()
        return None if row is None else int(row[0])

    def _ensure_repo(self, conn: sa.Connection, name: str, now: float) -> int:
        """The repository's id, creating it if needed; held FOR KEY SHARE until commit."""
        row = run(conn, _q_repo_held, repo=name).fetchone()
        if row is None:
            # Another transaction may be creating it too: then this insert waits for it and
            # does nothing, and the select finds its row.
            run(conn, _w_repo_add, repo=name, now=now)
            row = run(conn, _q_repo_held, repo=name).fetchone()
        return int(row[0])

    async def repository_exists(self, name: str) -> bool:
        def go() -> bool:
            return self._fast.first(self._q_repo, repo=name) is not None
        return await self._run(go)

    async def list_repositories(self, n: int | None, last: str | None) -> list[str]:
        def go() -> list[str]:
            q = sa.select(t.repositories.c.name).order_by(t.repositories.c.name)
            if last:
                q = q.where(t.repositories.c.name > last)
            if n is not None:
                q = q.limit(n)
            with self._read() as conn:
                return [r[0] for r in conn.execute(q)]
        return await self._run(go)

    # -- blobs --------------------------------------------------------------------------
    async def blob_size(self, repository: str, digest: str) -> int | None:
        """Size of ``digest`` if it is linked into ``repository``.

        Asking marks the link as used (at most once per ``touch_interval``), so that garbage
        collection leaves it alone while a push that found it finishes.
        """
        def go() -> tuple[Any, ...] | None:
            return self._fast.first(self._q_blob, repo=repository, digest=digest)
        row = await self._run(go)
        if row is None:
            return None
        now = self._clock()
        if row[1] < now - self._touch_interval:
            def touch(conn: sa.Connection, batch: Batch) -> int:
                return int(conn.execute(sa.update(t.repository_blobs).where(
                    t.repository_blobs.c.repository_id == row[2],
                    t.repository_blobs.c.digest == digest).values(touched_at=now)).rowcount)
            if not await self._tx(touch):  # a collection took it between our read and write
                return None
        return int(row[0])

    @staticmethod
    def _link(conn: sa.Connection, rid: int, digest: str, now: float) -> None:
        touched = conn.execute(sa.update(t.repository_blobs).where(
            t.repository_blobs.c.repository_id == rid,
            t.repository_blobs.c.digest == digest).values(touched_at=now)).rowcount
        if not touched:  # new here (or being linked by another transaction: then a no-op)
            conn.execute(insert_new(t.repository_blobs).values(
                repository_id=rid, digest=digest, created_at=now, touched_at=now))

    async def mount_blob(self, source: str, target: str, digest: str) -> int | None:
        """Link a blob of ``source`` into ``target``; its size, or None if source lacks it."""
        def go(conn: sa.Connection, batch: Batch) -> int | None:
            q = (
                sa.select(t.blobs.c.size)
                .select_from(t.repository_blobs.join(t.repositories).join(
                    t.blobs, t.blobs.c.digest == t.repository_blobs.c.digest))
                .where(t.repositories.c.name == source,
                       t.repository_blobs.c.digest == digest)
            )
            row = conn.execute(q).first()
            if row is None:
                return None
            now = self._clock()
            # Touch the blob row first, as finishing an upload does: a collection deleting it
            # meanwhile (PostgreSQL) re-checks its age and leaves it, or has deleted it
            # already and there is nothing to mount.
            if not conn.execute(sa.update(t.blobs).where(t.blobs.c.digest == digest).values(
                    created_at=now)).rowcount:
                return None
            self._link(conn, self._ensure_repo(conn, target, now), digest, now)
            return int(row[0])
        return await self._tx(go)

    async def unlink_blob(self, repository: str, digest: str,
                          check_held: HoldCheck | None = None) -> bool:
        """Unlink a blob from the repository; ``check_held(managed, holders)`` may veto it,
        decided on this transaction's view of the manifests that reference the blob."""
        def go(conn: sa.Connection, batch: Batch) -> bool:
            rid = self._repo_id(conn, repository)
            if rid is None:
                return False
            if check_held is not None:
                check_held(is_managed(conn, rid), holders(conn, rid, digest, is_blob=True))
            result = conn.execute(sa.delete(t.repository_blobs).where(
                t.repository_blobs.c.repository_id == rid,
                t.repository_blobs.c.digest == digest))
            return result.rowcount > 0
        return await self._tx(go)

    # -- manifests ----------------------------------------------------------------------
    async def put_manifest(
        self, record: ManifestRecord, references: Sequence[Reference], tags: Sequence[str],
        check_tag: TagCheck | None = None,
    ) -> None:
        """Store a manifest and point ``tags`` at it, in one transaction.

        Every referenced blob must be linked into the repository and every child manifest
        present in it, checked inside the same transaction (so garbage collection cannot
        remove them in between). ``check_tag(tag, current, managed)`` may veto a tag write.
        """
        annotations = json.dumps(record.annotations) if record.annotations else None
        unique = {ref.digest: ref for ref in references}

        def go(conn: sa.Connection, batch: Batch) -> None:
            # A push's manifest write: every statement compiled once, run on the driver.
            now = self._clock()
            rid = self._ensure_repo(conn, record.repository, now)
            self._check_references(conn, rid, references, now)
            exists = run(conn, _q_manifest_exists, rid=rid,
                            digest=record.digest).fetchone() is not None
            # rowcount 0: a concurrent push of the same manifest inserted it (and its
            # references) first.
            if not exists and run(
                    conn, _w_manifest_add, rid=rid, digest=record.digest,
                    media_type=record.media_type, size=record.size, content=record.content,
                    artifact_type=record.artifact_type, subject=record.subject,
                    annotations=annotations, now=now).rowcount and unique:
                run_many(conn, _w_reference_add, [
                    {"rid": rid, "parent": record.digest, "child": d,
                     "is_manifest": ref.is_manifest} for d, ref in unique.items()])
            for tag in tags:
                write_tag(conn, rid, tag, record.digest, now, check=check_tag)
        await self._tx(go)

    def _check_references(self, conn: sa.Connection, rid: int, refs: Sequence[Reference],
                          now: float) -> None:
        for digest in sorted({r.digest for r in refs if not r.is_manifest}):
            # Referenced now: garbage collection must leave these links alone.
            if not run(conn, _w_link_touch, rid=rid, d=digest, now=now).rowcount:
                raise RegistryError(Code.MANIFEST_BLOB_UNKNOWN, {"digest": digest},
                                    message=f"blob unknown to registry: {digest}")
        for digest in sorted({r.digest for r in refs if r.is_manifest}):
            if run(conn, _q_manifest_exists, rid=rid, digest=digest).fetchone() is None:
                raise RegistryError(Code.MANIFEST_UNKNOWN, {"digest": digest},
                                    message=f"child manifest unknown to registry: {digest}",
                                    status=400)

    _MANIFEST_COLUMNS = (t.manifests.c.digest, t.manifests.c.media_type, t.manifests.c.size,
                         t.manifests.c.content, t.manifests.c.artifact_type,
                         t.manifests.c.subject, t.manifests.c.annotations,
                         t.manifests.c.created_at)

    @staticmethod
    def _manifest(repository: str, row: Any) -> ManifestRecord:
        return ManifestRecord(
            repository=repository, digest=row[0], media_type=row[1], size=row[2],
            content=bytes(row[3]), artifact_type=row[4], subject=row[5],
            annotations=json.loads(row[6]) if row[6] else {}, created_at=row[7])

    async def get_manifest(self, repository: str, digest: str) -> ManifestRecord | None:
        def go() -> ManifestRecord | None:
            row = self._fast.first(self._q_manifest, repo=repository, digest=digest)
            return None if row is None else self._manifest(repository, row)
        return await self._run(go)

    async def resolve_tag(self, repository: str, tag: str) -> ManifestRecord | None:
        def go() -> ManifestRecord | None:
            row = self._fast.first(self._q_tag, repo=repository, tag=tag)
            return None if row is None else self._manifest(repository, row)
        return await self._run(go)

    async def delete_manifest(
        self, repository: str, digest: str,
        check_tag: TagCheck | None = None, check_held: HoldCheck | None = None,
    ) -> bool:
        """Delete a manifest and every tag pointing at it.

        ``check_tag`` may veto removing each tag; ``check_held(managed, holders)`` may veto
        deleting the manifest (held by itself and by the indexes listing it)."""
        def go(conn: sa.Connection, batch: Batch) -> bool:
            rid = self._repo_id(conn, repository)
            if rid is None:
                return False
            # The manifest first (FOR UPDATE on PostgreSQL): a push tagging it meanwhile
            # commits before this reads the tags, so no tag is left pointing at nothing.
            exists = conn.execute(sa.select(t.manifests.c.digest).where(
                t.manifests.c.repository_id == rid, t.manifests.c.digest == digest)
                .with_for_update()).first() is not None
            # FOR UPDATE (PostgreSQL): a tag being moved meanwhile is read as it ends up.
            tagged = [r[0] for r in conn.execute(sa.select(t.tags.c.name).where(
                t.tags.c.repository_id == rid, t.tags.c.digest == digest).with_for_update())]
            managed = is_managed(conn, rid) if check_tag or check_held else False
            if check_tag is not None:
                for tag in tagged:
                    check_tag(tag, digest, managed)
            if check_held is not None and exists:
                check_held(managed, holders(conn, rid, digest, is_blob=False))
            conn.execute(sa.delete(t.tags).where(
                t.tags.c.repository_id == rid, t.tags.c.digest == digest))
            for tag in tagged:
                record_tag_event(conn, rid, tag, digest, None, self._clock())
            conn.execute(sa.delete(t.manifest_references).where(
                t.manifest_references.c.repository_id == rid,
                t.manifest_references.c.parent == digest))
            result = conn.execute(sa.delete(t.manifests).where(
                t.manifests.c.repository_id == rid, t.manifests.c.digest == digest))
            return result.rowcount > 0
        return await self._tx(go)

    # -- tags ---------------------------------------------------------------------------
    async def delete_tag(
        self, repository: str, tag: str,
        check_tag: TagCheck | None = None,
    ) -> bool:
        def go(conn: sa.Connection, batch: Batch) -> bool:
            rid = self._repo_id(conn, repository)
            if rid is None:
                return False
            row = conn.execute(sa.select(t.tags.c.digest).where(
                t.tags.c.repository_id == rid, t.tags.c.name == tag).with_for_update()).first()
            if row is None:
                return False
            if check_tag is not None:
                check_tag(tag, str(row[0]), is_managed(conn, rid))
            conn.execute(sa.delete(t.tags).where(
                t.tags.c.repository_id == rid, t.tags.c.name == tag))
            record_tag_event(conn, rid, tag, str(row[0]), None, self._clock())
            return True
        return await self._tx(go)

    async def list_tags(self, repository: str, n: int | None, last: str | None
                        ) -> list[str] | None:
        """Tags in lexical order after ``last``; None when the repository is unknown."""
        def go() -> list[str] | None:
            with self._read() as conn:
                rid = self._repo_id(conn, repository)
                if rid is None:
                    return None
                q = (sa.select(t.tags.c.name).where(t.tags.c.repository_id == rid)
                     .order_by(t.tags.c.name))
                if last:
                    q = q.where(t.tags.c.name > last)
                if n is not None:
                    q = q.limit(n)
                return [r[0] for r in conn.execute(q)]
        return await self._run(go)

    # -- referrers ----------------------------------------------------------------------
    async def referrers(self, repository: str, subject: str, *,
                        artifact_type: str | None = None, n: int | None = None,
                        last: str | None = None) -> list[Referrer]:
        """The manifests of ``repository`` whose subject is ``subject``, in digest order after
        ``last`` (at most ``n``; only those of ``artifact_type`` when given)."""
        def go() -> list[Referrer]:
            m = t.manifests
            q = (sa.select(m.c.digest, m.c.media_type, m.c.size, m.c.artifact_type,
                           m.c.annotations)
                 .select_from(m.join(t.repositories))
                 .where(t.repositories.c.name == repository, m.c.subject == subject)
                 .order_by(m.c.digest))
            if artifact_type is not None:
                q = q.where(m.c.artifact_type == artifact_type)
            if last:
                q = q.where(m.c.digest > last)
            if n is not None:
                q = q.limit(n)
            with self._read() as conn:
                return [Referrer(row[0], row[1], row[2], row[3],
                                 json.loads(row[4]) if row[4] else {})
                        for row in conn.execute(q)]
        return await self._run(go)

    # -- upload sessions ----------------------------------------------------------------
    async def get_upload(self, upload_id: str) -> UploadRecord | None:
        def go() -> UploadRecord | None:
            row = self._fast.first(self._q_upload, id=upload_id)
            return None if row is None else UploadRecord(*row)
        return await self._run(go)

    async def open_upload(self, record: UploadRecord, limit: int, idle_before: float,
                          stale_before: float) -> int:
        """Record the session ``record`` of ``record.account`` unless that account has
        ``limit`` open sessions already; returns how many it had (the row is written only when
        fewer). Open: not idle (an empty session touched before ``idle_before``) and not stale
        (touched before ``stale_before``). One transaction, so workers and nodes count
        together (on PostgreSQL two racing opens may both pass at ``limit - 1``)."""
        def go(conn: sa.Connection, batch: Batch) -> int:
            count = int(run(conn, _q_upload_count, account=record.account, zero=0,
                            stale=stale_before, idle=idle_before).fetchone()[0])
            if count < limit:
                run(conn, _w_upload_open, id=record.id, repo=record.repository, zero=0,
                    now=record.created_at, account=record.account)
            return count
        # Like an offset, a session may be lost to a power failure: the client starts anew.
        return await self._writes.run(go, durable=False)

    async def advance_upload(self, upload_id: str, repository: str, old_size: int,
                             new_size: int) -> bool:
        """Move an upload's offset forward if nobody else moved it meanwhile.

        A session has a row only once a chunk has been recorded: starting one costs no
        transaction, and a monolithic push (POST, then PUT with the body) never needs one.
        """
        def go(conn: sa.Connection, batch: Batch) -> bool:
            now = self._clock()
            result = conn.execute(sa.update(t.uploads).where(
                t.uploads.c.id == upload_id, t.uploads.c.size == old_size).values(
                    size=new_size, updated_at=now))
            if result.rowcount > 0:
                return True
            if old_size != 0:
                return False
            # The first chunk creates the row; of two racing first chunks one inserts it and
            # the other finds it there (a no-op, as if it had lost the compare-and-set).
            return bool(run(conn, _w_upload_add, id=upload_id, repo=repository,
                               size=new_size, now=now).rowcount > 0)
        # An offset may fall back after a power loss (the client resumes from there), so
        # its commit does not wait for the disk.
        return await self._writes.run(go, durable=False)

    async def finish_upload(self, upload_id: str, repository: str, digest: str, size: int,
                            place: Callable[[], None],
                            persist: Callable[[list[str]], None]) -> None:
        """Record the blob, place its bytes (``place``), link it and end the session: one
        transaction. ``persist(digests)`` makes placements durable; it runs once per group
        commit, before COMMIT, for every blob the commit places.

        Garbage collection deletes a blob's row and its bytes in one transaction under the
        same write lock (row locks on PostgreSQL), so the two never interleave: either the
        collection finishes first and the bytes placed here stay, or it runs after and finds
        the blob linked.
        """
        def go(conn: sa.Connection, batch: Batch) -> None:
            now = self._clock()
            # The hottest write of a push: statements compiled once, run on the driver.
            rid = self._ensure_repo(conn, repository, now)
            # The blob row is touched (or created) before the bytes are placed: a collection
            # deleting it either finished first (this then creates it anew) or re-checks its
            # age after this commits and leaves it alone (row lock on PostgreSQL).
            if not run(conn, _w_blob_touch, d=digest, now=now).rowcount and not run(
                    conn, _w_blob_add, d=digest, size=size, now=now).rowcount:
                run(conn, _w_blob_touch, d=digest, now=now)  # created meanwhile
            place()
            batch.before_commit(persist, digest)
            if not run(conn, _w_link_touch, rid=rid, d=digest, now=now).rowcount:
                run(conn, _w_link_add, rid=rid, d=digest, now=now)
            run(conn, _w_upload_drop, id=upload_id)
        await self._tx(go)

    async def delete_upload(self, upload_id: str) -> bool:
        def go(conn: sa.Connection, batch: Batch) -> bool:
            return conn.execute(sa.delete(t.uploads).where(
                t.uploads.c.id == upload_id)).rowcount > 0
        return await self._tx(go)

    async def stale_uploads(self, before: float,
                            idle_before: float | None = None) -> list[UploadRecord]:
        """Sessions touched before ``before``, and empty ones touched before ``idle_before``."""
        def go() -> list[UploadRecord]:
            u = t.uploads
            stale = u.c.updated_at < before
            if idle_before is not None:
                stale = sa.or_(stale, sa.and_(u.c.size == 0, u.c.updated_at < idle_before))
            with self._read() as conn:
                rows = conn.execute(sa.select(
                    u.c.id, u.c.repository, u.c.size, u.c.created_at, u.c.updated_at,
                    u.c.account).where(stale)).all()
            return [UploadRecord(*r) for r in rows]
        return await self._run(go)
