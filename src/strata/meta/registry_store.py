"""RegistryStore: the registry's metadata (repositories, blobs, manifests, tags, upload
sessions) on a :class:`strata.meta.database.Database` (SQLite or PostgreSQL).

One way to run SQL here: every statement is a module-level builder, compiled once per dialect
(``Database.prepared``) and run on the driver.

- Reads run as hot reads: ``Database.fetch_one`` / ``fetch_all`` (inline on SQLite, a thread
  on PostgreSQL); each is one SELECT, its own snapshot.
- Writes are jobs given to ``Database.write`` (one short transaction each, group-committed on
  SQLite); inside them statements run with :func:`strata.meta.database.run`.

Callers get the project's frozen values (:mod:`strata.meta.records`), never rows.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from strata.errors import Code, RegistryError
from strata.meta import schema as t
from strata.meta.conflicts import insert_new
from strata.meta.database import Batch, Database, run, run_many
from strata.meta.records import (
    HoldCheck,
    ManifestRecord,
    Reference,
    Referrer,
    TagCheck,
    UploadRecord,
)
from strata.meta.tagwrite import holders, is_managed, record_tag_event, write_tag

# ``LIMIT`` when the caller asked for no limit (a bound parameter keeps one statement).
_NO_LIMIT = 2**62

# -- reads (hot: compiled once, run through Database.fetch_one / fetch_all) -------------------


def _manifest_select() -> sa.Select[Any]:
    m = t.manifests
    return sa.select(m.c.digest, m.c.media_type, m.c.size, m.c.content, m.c.artifact_type,
                     m.c.subject, m.c.annotations, m.c.created_at)


def _r_tag() -> sa.ClauseElement:
    return (_manifest_select().select_from(
        t.tags.join(t.repositories).join(t.manifests, sa.and_(
            t.manifests.c.repository_id == t.tags.c.repository_id,
            t.manifests.c.digest == t.tags.c.digest)))
        .where(t.repositories.c.name == sa.bindparam("repo"),
               t.tags.c.name == sa.bindparam("tag")))


def _r_manifest() -> sa.ClauseElement:
    return (_manifest_select().select_from(t.manifests.join(t.repositories))
            .where(t.repositories.c.name == sa.bindparam("repo"),
                   t.manifests.c.digest == sa.bindparam("digest")))


def _r_blob() -> sa.ClauseElement:
    rb = t.repository_blobs
    return (sa.select(t.blobs.c.size, rb.c.touched_at, rb.c.repository_id)
            .select_from(rb.join(t.repositories).join(t.blobs, t.blobs.c.digest == rb.c.digest))
            .where(t.repositories.c.name == sa.bindparam("repo"),
                   rb.c.digest == sa.bindparam("digest")))


def _r_repo() -> sa.ClauseElement:
    return sa.select(t.repositories.c.id).where(t.repositories.c.name == sa.bindparam("repo"))


def _r_repositories() -> sa.ClauseElement:
    r = t.repositories
    return (sa.select(r.c.name).where(r.c.name > sa.bindparam("last")).order_by(r.c.name)
            .limit(sa.bindparam("n", type_=sa.BigInteger)))


def _r_tags() -> sa.ClauseElement:
    return (sa.select(t.tags.c.name)
            .where(t.tags.c.repository_id == sa.bindparam("rid"),
                   t.tags.c.name > sa.bindparam("last"))
            .order_by(t.tags.c.name).limit(sa.bindparam("n", type_=sa.BigInteger)))


def _referrers(typed: bool) -> sa.ClauseElement:
    m = t.manifests
    q = (sa.select(m.c.digest, m.c.media_type, m.c.size, m.c.artifact_type, m.c.annotations)
         .select_from(m.join(t.repositories))
         .where(t.repositories.c.name == sa.bindparam("repo"),
                m.c.subject == sa.bindparam("subject"), m.c.digest > sa.bindparam("last")))
    if typed:
        q = q.where(m.c.artifact_type == sa.bindparam("artifact_type"))
    return q.order_by(m.c.digest).limit(sa.bindparam("n", type_=sa.BigInteger))


def _r_referrers() -> sa.ClauseElement:
    return _referrers(False)


def _r_referrers_typed() -> sa.ClauseElement:
    return _referrers(True)


def _upload_select() -> sa.Select[Any]:
    u = t.uploads
    return sa.select(u.c.id, u.c.repository, u.c.size, u.c.created_at, u.c.updated_at,
                     u.c.account, u.c.hash_state)


def _r_upload() -> sa.ClauseElement:
    return _upload_select().where(t.uploads.c.id == sa.bindparam("id"))


def _r_stale_uploads() -> sa.ClauseElement:
    return _upload_select().where(t.uploads.c.updated_at < sa.bindparam("before"))


def _r_stale_or_idle_uploads() -> sa.ClauseElement:
    u = t.uploads
    return _upload_select().where(sa.or_(
        u.c.updated_at < sa.bindparam("before"),
        sa.and_(u.c.size == sa.bindparam("zero"), u.c.updated_at < sa.bindparam("idle"))))


# -- statements of the write transactions (run with ``run`` inside Database.write jobs) ------

def _q_repo_id() -> sa.ClauseElement:
    return sa.select(t.repositories.c.id).where(t.repositories.c.name == sa.bindparam("repo"))


def _q_repo_held() -> sa.ClauseElement:
    # Writers hold the repository row FOR KEY SHARE (PostgreSQL; SQLite has one writer):
    # compatible with each other, and it makes a garbage collection of the repository
    # (FOR UPDATE) wait for them and them wait for it, as the write lock does on SQLite.
    return sa.select(t.repositories.c.id).where(
        t.repositories.c.name == sa.bindparam("repo")).with_for_update(read=True, key_share=True)


def _w_repo_add() -> sa.ClauseElement:
    return insert_new(t.repositories).values(name=sa.bindparam("repo"),
                                             created_at=sa.bindparam("now"))


def _q_blob_size_in() -> sa.ClauseElement:
    rb = t.repository_blobs
    return (sa.select(t.blobs.c.size)
            .select_from(rb.join(t.repositories).join(t.blobs, t.blobs.c.digest == rb.c.digest))
            .where(t.repositories.c.name == sa.bindparam("repo"),
                   rb.c.digest == sa.bindparam("d")))


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


def _w_link_drop() -> sa.ClauseElement:
    return sa.delete(t.repository_blobs).where(
        t.repository_blobs.c.repository_id == sa.bindparam("rid"),
        t.repository_blobs.c.digest == sa.bindparam("d"))


def _q_manifest_exists() -> sa.ClauseElement:
    # FOR KEY SHARE (PostgreSQL): a manifest a push tags or refers to cannot be deleted
    # (delete_manifest locks it FOR UPDATE) until the push commits, and one being deleted is
    # waited for and then found gone.
    return sa.select(t.manifests.c.digest).where(
        t.manifests.c.repository_id == sa.bindparam("rid"),
        t.manifests.c.digest == sa.bindparam("digest")).with_for_update(read=True,
                                                                         key_share=True)


def _q_manifest_locked() -> sa.ClauseElement:
    return sa.select(t.manifests.c.digest).where(
        t.manifests.c.repository_id == sa.bindparam("rid"),
        t.manifests.c.digest == sa.bindparam("digest")).with_for_update()


def _w_manifest_add() -> sa.ClauseElement:
    return insert_new(t.manifests).values(
        repository_id=sa.bindparam("rid"), digest=sa.bindparam("digest"),
        media_type=sa.bindparam("media_type"), size=sa.bindparam("size"),
        content=sa.bindparam("content"), artifact_type=sa.bindparam("artifact_type"),
        subject=sa.bindparam("subject"), annotations=sa.bindparam("annotations"),
        created_at=sa.bindparam("now"))


def _w_manifest_drop() -> sa.ClauseElement:
    return sa.delete(t.manifests).where(t.manifests.c.repository_id == sa.bindparam("rid"),
                                        t.manifests.c.digest == sa.bindparam("digest"))


def _w_reference_add() -> sa.ClauseElement:
    return sa.insert(t.manifest_references).values(
        repository_id=sa.bindparam("rid"), parent=sa.bindparam("parent"),
        child=sa.bindparam("child"), is_manifest=sa.bindparam("is_manifest"))


def _w_references_drop() -> sa.ClauseElement:
    r = t.manifest_references
    return sa.delete(r).where(r.c.repository_id == sa.bindparam("rid"),
                              r.c.parent == sa.bindparam("digest"))


def _q_tags_of_locked() -> sa.ClauseElement:
    # FOR UPDATE (PostgreSQL): a tag being moved meanwhile is read as it ends up.
    return sa.select(t.tags.c.name).where(
        t.tags.c.repository_id == sa.bindparam("rid"),
        t.tags.c.digest == sa.bindparam("digest")).with_for_update()


def _w_tags_of_drop() -> sa.ClauseElement:
    return sa.delete(t.tags).where(t.tags.c.repository_id == sa.bindparam("rid"),
                                   t.tags.c.digest == sa.bindparam("digest"))


def _q_tag_locked() -> sa.ClauseElement:
    return sa.select(t.tags.c.digest).where(
        t.tags.c.repository_id == sa.bindparam("rid"),
        t.tags.c.name == sa.bindparam("tag")).with_for_update()


def _w_tag_drop() -> sa.ClauseElement:
    return sa.delete(t.tags).where(t.tags.c.repository_id == sa.bindparam("rid"),
                                   t.tags.c.name == sa.bindparam("tag"))


def _w_upload_drop() -> sa.ClauseElement:
    return sa.delete(t.uploads).where(t.uploads.c.id == sa.bindparam("id"))


def _w_upload_add() -> sa.ClauseElement:
    # Run on the driver: its rowcount tells whether the row was inserted (SQLAlchemy's result
    # has no reliable rowcount for an INSERT; on psycopg it is -1).
    return insert_new(t.uploads).values(
        id=sa.bindparam("id"), repository=sa.bindparam("repo"), size=sa.bindparam("size"),
        created_at=sa.bindparam("now"), updated_at=sa.bindparam("now"),
        hash_state=sa.bindparam("hash_state"))


def _w_upload_advance() -> sa.ClauseElement:
    u = t.uploads
    return sa.update(u).where(u.c.id == sa.bindparam("id"),
                              u.c.size == sa.bindparam("old")).values(
        size=sa.bindparam("new"), updated_at=sa.bindparam("now"),
        hash_state=sa.bindparam("hash_state"))


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


def _manifest(repository: str, row: Sequence[Any]) -> ManifestRecord:
    return ManifestRecord(
        repository=repository, digest=row[0], media_type=row[1], size=row[2],
        content=bytes(row[3]), artifact_type=row[4], subject=row[5],
        annotations=json.loads(row[6]) if row[6] else {}, created_at=row[7])


class RegistryStore:
    """The registry's :class:`strata.registry.ports.MetaStore` on a shared ``Database``.

    ``touch_interval``: a blob asked for is marked used at most this often (see
    :meth:`blob_size`)."""

    def __init__(self, db: Database, *, touch_interval: float = 300.0) -> None:
        self._db = db
        self._touch_interval = touch_interval

    @property
    def database(self) -> Database:
        return self._db

    def close(self) -> None:
        """Nothing of its own to release: the ``Database`` is closed by whoever built it."""

    async def _one(self, build: Callable[[], sa.ClauseElement],
                   params: Mapping[str, Any]) -> tuple[Any, ...] | None:
        return await self._db.fetch_one(self._db.prepared(build), params)

    async def _all(self, build: Callable[[], sa.ClauseElement],
                   params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        return await self._db.fetch_all(self._db.prepared(build), params)

    # -- repositories -------------------------------------------------------------------
    @staticmethod
    def _repo_id(conn: sa.Connection, name: str) -> int | None:
        row = run(conn, _q_repo_id, repo=name).fetchone()
        return None if row is None else int(row[0])

    @staticmethod
    def _ensure_repo(conn: sa.Connection, name: str, now: float) -> int:
        """The repository's id, creating it if needed; held FOR KEY SHARE until commit."""
        row = run(conn, _q_repo_held, repo=name).fetchone()
        if row is None:
            # Another transaction may be creating it too: then this insert waits for it and
            # does nothing, and the select finds its row.
            run(conn, _w_repo_add, repo=name, now=now)
            row = run(conn, _q_repo_held, repo=name).fetchone()
        return int(row[0])

    async def repository_exists(self, name: str) -> bool:
        return await self._one(_r_repo, {"repo": name}) is not None

    async def list_repositories(self, n: int | None, last: str | None) -> list[str]:
        rows = await self._all(_r_repositories, {
            "last": last or "", "n": _NO_LIMIT if n is None else n})
        return [str(r[0]) for r in rows]

    # -- blobs --------------------------------------------------------------------------
    async def blob_size(self, repository: str, digest: str) -> int | None:
        """Size of ``digest`` if it is linked into ``repository``.

        Asking marks the link as used (at most once per ``touch_interval``), so that garbage
        collection leaves it alone while a push that found it finishes.
        """
        row = await self._one(_r_blob, {"repo": repository, "digest": digest})
        if row is None:
            return None
        now = self._db.now()
        if row[1] < now - self._touch_interval:
            rid = row[2]

            def touch(conn: sa.Connection, batch: Batch) -> int:
                return int(run(conn, _w_link_touch, rid=rid, d=digest, now=now).rowcount)
            if not await self._db.write(touch):  # a collection took it between read and write
                return None
        return int(row[0])

    @staticmethod
    def _link(conn: sa.Connection, rid: int, digest: str, now: float) -> None:
        # New here (or being linked by another transaction: then the insert is a no-op).
        if not run(conn, _w_link_touch, rid=rid, d=digest, now=now).rowcount:
            run(conn, _w_link_add, rid=rid, d=digest, now=now)

    async def mount_blob(self, source: str, target: str, digest: str) -> int | None:
        """Link a blob of ``source`` into ``target``; its size, or None if source lacks it."""
        def go(conn: sa.Connection, batch: Batch) -> int | None:
            row = run(conn, _q_blob_size_in, repo=source, d=digest).fetchone()
            if row is None:
                return None
            now = self._db.now()
            # Touch the blob row first, as finishing an upload does: a collection deleting it
            # meanwhile (PostgreSQL) re-checks its age and leaves it, or has deleted it
            # already and there is nothing to mount.
            if not run(conn, _w_blob_touch, d=digest, now=now).rowcount:
                return None
            self._link(conn, self._ensure_repo(conn, target, now), digest, now)
            return int(row[0])
        return await self._db.write(go)

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
            return bool(run(conn, _w_link_drop, rid=rid, d=digest).rowcount > 0)
        return await self._db.write(go)

    # -- manifests ----------------------------------------------------------------------
    async def put_manifest(
        self, record: ManifestRecord, references: Sequence[Reference], tags: Sequence[str],
        check_tag: TagCheck | None = None,
        check_manifest: Callable[[bool], None] | None = None,
    ) -> None:
        """Store a manifest and point ``tags`` at it, in one transaction.

        Every referenced blob must be linked into the repository and every child manifest
        present in it, checked inside the same transaction (so garbage collection cannot
        remove them in between). ``check_tag(tag, current, managed)`` may veto a tag write,
        ``check_manifest(managed)`` the manifest itself.
        """
        annotations = json.dumps(record.annotations) if record.annotations else None
        unique = {ref.digest: ref for ref in references}

        def go(conn: sa.Connection, batch: Batch) -> None:
            now = self._db.now()
            rid = self._ensure_repo(conn, record.repository, now)
            if check_manifest is not None:
                check_manifest(is_managed(conn, rid))
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
        await self._db.write(go)

    @staticmethod
    def _check_references(conn: sa.Connection, rid: int, refs: Sequence[Reference],
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

    async def get_manifest(self, repository: str, digest: str) -> ManifestRecord | None:
        row = await self._one(_r_manifest, {"repo": repository, "digest": digest})
        return None if row is None else _manifest(repository, row)

    async def resolve_tag(self, repository: str, tag: str) -> ManifestRecord | None:
        row = await self._one(_r_tag, {"repo": repository, "tag": tag})
        return None if row is None else _manifest(repository, row)

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
            exists = run(conn, _q_manifest_locked, rid=rid,
                         digest=digest).fetchone() is not None
            tagged = [str(r[0]) for r in
                      run(conn, _q_tags_of_locked, rid=rid, digest=digest).fetchall()]
            managed = is_managed(conn, rid) if check_tag or check_held else False
            if check_tag is not None:
                for tag in tagged:
                    check_tag(tag, digest, managed)
            if check_held is not None and exists:
                check_held(managed, holders(conn, rid, digest, is_blob=False))
            run(conn, _w_tags_of_drop, rid=rid, digest=digest)
            for tag in tagged:
                record_tag_event(conn, rid, tag, digest, None, self._db.now())
            run(conn, _w_references_drop, rid=rid, digest=digest)
            return bool(run(conn, _w_manifest_drop, rid=rid, digest=digest).rowcount > 0)
        return await self._db.write(go)

    # -- tags ---------------------------------------------------------------------------
    async def delete_tag(
        self, repository: str, tag: str,
        check_tag: TagCheck | None = None,
    ) -> bool:
        def go(conn: sa.Connection, batch: Batch) -> bool:
            rid = self._repo_id(conn, repository)
            if rid is None:
                return False
            row = run(conn, _q_tag_locked, rid=rid, tag=tag).fetchone()
            if row is None:
                return False
            if check_tag is not None:
                check_tag(tag, str(row[0]), is_managed(conn, rid))
            run(conn, _w_tag_drop, rid=rid, tag=tag)
            record_tag_event(conn, rid, tag, str(row[0]), None, self._db.now())
            return True
        return await self._db.write(go)

    async def list_tags(self, repository: str, n: int | None, last: str | None
                        ) -> list[str] | None:
        """Tags in lexical order after ``last``; None when the repository is unknown."""
        repo = await self._one(_r_repo, {"repo": repository})
        if repo is None:
            return None
        rows = await self._all(_r_tags, {
            "rid": repo[0], "last": last or "", "n": _NO_LIMIT if n is None else n})
        return [str(r[0]) for r in rows]

    # -- referrers ----------------------------------------------------------------------
    async def referrers(self, repository: str, subject: str, *,
                        artifact_type: str | None = None, n: int | None = None,
                        last: str | None = None) -> list[Referrer]:
        """The manifests of ``repository`` whose subject is ``subject``, in digest order after
        ``last`` (at most ``n``; only those of ``artifact_type`` when given)."""
        params: dict[str, Any] = {"repo": repository, "subject": subject, "last": last or "",
                                  "n": _NO_LIMIT if n is None else n}
        if artifact_type is None:
            rows = await self._all(_r_referrers, params)
        else:
            rows = await self._all(_r_referrers_typed, {**params, "artifact_type": artifact_type})
        return [Referrer(row[0], row[1], row[2], row[3], json.loads(row[4]) if row[4] else {})
                for row in rows]

    # -- upload sessions ----------------------------------------------------------------
    async def get_upload(self, upload_id: str) -> UploadRecord | None:
        row = await self._one(_r_upload, {"id": upload_id})
        return None if row is None else UploadRecord(*row)

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
        return await self._db.write(go, durable=False)

    async def advance_upload(self, upload_id: str, repository: str, old_size: int,
                             new_size: int, hash_state: bytes | None = None) -> bool:
        """Move an upload's offset forward if nobody else moved it meanwhile, with the running
        hash of its bytes at the new offset (``hash_state``).

        A session has a row only once a chunk has been recorded: starting one costs no
        transaction, and a monolithic push (POST, then PUT with the body) never needs one.
        """
        def go(conn: sa.Connection, batch: Batch) -> bool:
            now = self._db.now()
            if run(conn, _w_upload_advance, id=upload_id, old=old_size, new=new_size,
                   now=now, hash_state=hash_state).rowcount > 0:
                return True
            if old_size != 0:
                return False
            # The first chunk creates the row; of two racing first chunks one inserts it and
            # the other finds it there (a no-op, as if it had lost the compare-and-set).
            return bool(run(conn, _w_upload_add, id=upload_id, repo=repository,
                            size=new_size, now=now, hash_state=hash_state).rowcount > 0)
        # An offset may fall back after a power loss (the client resumes from there), so
        # its commit does not wait for the disk.
        return await self._db.write(go, durable=False)

    async def finish_upload(self, upload_id: str, repository: str, digest: str, size: int,
                            place: Callable[[], None],
                            persist: Callable[[list[str]], None],
                            prepare: Callable[[], None] | None = None) -> None:
        """Record the blob, place its bytes (``place``), link it and end the session: one
        transaction. ``persist(digests)`` makes placements durable; it runs once per group
        commit, before COMMIT, for every blob the commit places. ``prepare`` (the bytes'
        fdatasync) runs on a thread before the transaction is queued.

        Garbage collection deletes a blob's row and its bytes in one transaction under the
        same write lock (row locks on PostgreSQL), so the two never interleave: either the
        collection finishes first and the bytes placed here stay, or it runs after and finds
        the blob linked.
        """
        def go(conn: sa.Connection, batch: Batch) -> None:
            now = self._db.now()
            rid = self._ensure_repo(conn, repository, now)
            # The blob row is touched (or created) before the bytes are placed: a collection
            # deleting it either finished first (this then creates it anew) or re-checks its
            # age after this commits and leaves it alone (row lock on PostgreSQL).
            if not run(conn, _w_blob_touch, d=digest, now=now).rowcount and not run(
                    conn, _w_blob_add, d=digest, size=size, now=now).rowcount:
                run(conn, _w_blob_touch, d=digest, now=now)  # created meanwhile
            place()
            batch.before_commit(persist, digest)
            self._link(conn, rid, digest, now)
            run(conn, _w_upload_drop, id=upload_id)
        await self._db.write(go, prepare=prepare)

    async def delete_upload(self, upload_id: str) -> bool:
        def go(conn: sa.Connection, batch: Batch) -> bool:
            return bool(run(conn, _w_upload_drop, id=upload_id).rowcount > 0)
        return await self._db.write(go)

    async def stale_uploads(self, before: float,
                            idle_before: float | None = None) -> list[UploadRecord]:
        """Sessions touched before ``before``, and empty ones touched before ``idle_before``."""
        if idle_before is None:
            rows = await self._all(_r_stale_uploads, {"before": before})
        else:
            rows = await self._all(_r_stale_or_idle_uploads,
                                   {"before": before, "zero": 0, "idle": idle_before})
        return [UploadRecord(*r) for r in rows]
