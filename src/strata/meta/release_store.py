"""SQL of the release engine: namespaces, images, candidate builds, streams, releases, release
items and tag history, on top of :class:`strata.meta.database.Database`.

The release use-cases (:mod:`strata.release`) speak to it in the release domain's frozen values
(:mod:`strata.release.model`), never in rows or connections. A use-case that must read and
decide and write at once gives :meth:`ReleaseStore.write` a function of a
:class:`ReleaseWriter`: it runs in one write transaction (the data dir's write lock on SQLite,
row locks on the images on PostgreSQL), so a uniqueness race, a crash or an exception leaves
none of it. :meth:`ReleaseWriter.publish` is the write half of a release: every tag move (each
with its ``tag_events`` row, through :func:`write_tag`, the registry's own tag write), the
builds' status, the release items, the notes and the ``release.published`` webhook event.

Tag writes go straight to the registry's ``tags`` table: this is how the release engine moves
tags past the registry's write policy, which guards only the ``/v2/`` path.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa

from strata.meta import review_sql, search_sql
from strata.meta import schema as r
from strata.meta.database import Database
from strata.meta.key_store import TrustWriter
from strata.meta.rebuild_store import queue_dependants, rebuild_notes
from strata.meta.tagwrite import write_tag
from strata.meta.webhook_store import enqueue
from strata.release.model import (
    Build,
    BuildStatus,
    Image,
    ImageStatus,
    Namespace,
    Release,
    ReleaseKind,
    ReleaseStatus,
    RepositoryTags,
    Stream,
    TagEvent,
    TagMove,
)
from strata.release.nvr import NVR

T = TypeVar("T")


def _json_list(text: str | None) -> tuple[str, ...]:
    return tuple(json.loads(text)) if text else ()


def _namespace(row: Any) -> Namespace:
    return Namespace(row.name, row.dist_tag, int(row.interval_days),
                     dt.date.fromisoformat(row.anchor), row.base_image, row.created_at)


def _image(row: Any) -> Image:
    return Image(row.repository, row.namespace, row.name, ImageStatus(row.status),
                 _json_list(row.maintainers), row.source_url, row.source_branch, row.created_at,
                 row.summary)


def _build(row: Any) -> Build:
    return Build(row.repository, row.digest, NVR(row.name, row.version, row.release),
                 BuildStatus(row.status), _json_list(row.advisories), row.reason,
                 row.release_name, row.created_at, row.created_by, row.withdrawn_at,
                 row.withdrawn_by, row.withdrawn_reason)


def _release(row: Any) -> Release:
    return Release(
        row.name, ReleaseKind(row.kind), row.namespace,
        dt.date.fromisoformat(row.scheduled_for) if row.scheduled_for else None,
        ReleaseStatus(row.status), row.created_at, row.published_at, row.actor,
        _json_list(row.advisories), row.reason, row.notes_md,
        json.loads(row.notes_json) if row.notes_json else None)


def _event(row: Any) -> TagEvent:
    return TagEvent(row.repository, row.tag, row.old_digest, row.new_digest, row.actor,
                    row.release_name, row.reason, row.at, row.id)


class ReleaseReader:
    """What a release use-case reads, inside one transaction."""

    def __init__(self, conn: sa.Connection) -> None:
        self._conn = conn

    # -- namespaces --------------------------------------------------------------------------
    def namespace(self, name: str) -> Namespace | None:
        row = self._conn.execute(sa.select(r.namespaces).where(
            r.namespaces.c.name == name)).first()
        return None if row is None else _namespace(row)

    def namespaces(self) -> list[Namespace]:
        rows = self._conn.execute(sa.select(r.namespaces).order_by(r.namespaces.c.name))
        return [_namespace(row) for row in rows]

    # -- images ------------------------------------------------------------------------------
    def image(self, repository: str, *, lock: bool = False) -> Image | None:
        """The image of ``repository``; ``lock``: row-locked until commit (PostgreSQL;
        SQLite's writers are serialised anyway)."""
        q = sa.select(r.images).where(r.images.c.repository == repository)
        if lock:
            q = q.with_for_update()
        row = self._conn.execute(q).first()
        return None if row is None else _image(row)

    def lock_images(self, repositories: Iterable[str]) -> None:
        """Serialise release writes per repository (row locks on PostgreSQL, in name order)."""
        for repository in sorted(set(repositories)):
            self.image(repository, lock=True)

    def images(self, namespace: str | None = None) -> list[Image]:
        q = sa.select(r.images).order_by(r.images.c.repository)
        if namespace is not None:
            q = q.where(r.images.c.namespace == namespace)
        return [_image(row) for row in self._conn.execute(q)]

    # -- builds ------------------------------------------------------------------------------
    def build(self, repository: str, digest: str) -> Build | None:
        row = self._conn.execute(sa.select(r.candidates).where(
            r.candidates.c.repository == repository, r.candidates.c.digest == digest)).first()
        return None if row is None else _build(row)

    def build_by_nvr(self, repository: str, version: str, release: str) -> Build | None:
        c = r.candidates.c
        row = self._conn.execute(sa.select(r.candidates).where(
            c.repository == repository, c.version == version, c.release == release)).first()
        return None if row is None else _build(row)

    def builds(self, *, namespace: str | None = None, repository: str | None = None,
               status: BuildStatus | tuple[BuildStatus, ...] | None = None,
               release_name: str | None = None, active_only: bool = False) -> list[Build]:
        c = r.candidates.c
        q = sa.select(r.candidates).join(r.images, r.images.c.repository == c.repository)
        if namespace is not None:
            q = q.where(r.images.c.namespace == namespace)
        if repository is not None:
            q = q.where(c.repository == repository)
        if isinstance(status, BuildStatus):
            q = q.where(c.status == status.value)
        elif status is not None:
            q = q.where(c.status.in_([s.value for s in status]))
        if release_name is not None:
            q = q.where(c.release_name == release_name)
        if active_only:
            q = q.where(r.images.c.status == ImageStatus.ACTIVE.value)
        return [_build(row) for row in self._conn.execute(q.order_by(c.repository, c.id))]

    # -- streams -----------------------------------------------------------------------------
    def streams(self, repository: str) -> list[Stream]:
        rows = self._conn.execute(sa.select(r.streams).where(
            r.streams.c.repository == repository).order_by(r.streams.c.version))
        return [Stream(row.repository, row.version, bool(row.eol), row.eol_at, row.eol_by)
                for row in rows]

    def eol_versions(self, repository: str) -> frozenset[str]:
        return frozenset(s.version for s in self.streams(repository) if s.eol)

    # -- releases ----------------------------------------------------------------------------
    def release(self, name: str) -> Release | None:
        row = self._conn.execute(sa.select(r.releases).where(
            r.releases.c.name == name)).first()
        return None if row is None else _release(row)

    def releases(self, namespace: str | None = None, limit: int = 100,
                 after: Release | None = None) -> list[Release]:
        """Newest first (published, else created; then by name); ``after``: only those
        that come after that release in this order."""
        c = r.releases.c
        when = sa.func.coalesce(c.published_at, c.created_at)
        q = sa.select(r.releases).order_by(when.desc(), c.name.desc()).limit(limit)
        if after is not None:
            at = after.published_at if after.published_at is not None else after.created_at
            q = q.where(sa.or_(when < at, sa.and_(when == at, c.name < after.name)))
        if namespace is not None:
            q = q.where(c.namespace == namespace)
        return [_release(row) for row in self._conn.execute(q)]

    def releases_of_date(self, day: str) -> list[str]:
        """Names of the releases a date names: ``<ns>-<day>`` or ``<ns>-security-<day>-<n>``."""
        c = r.releases.c
        rows = self._conn.execute(sa.select(c.name).where(sa.or_(
            c.name.endswith(f"-{day}", autoescape=True),
            c.name.contains(f"-security-{day}-", autoescape=True))).order_by(c.name))
        return [str(row[0]) for row in rows]

    def last_scheduled(self, namespace: str) -> dt.date | None:
        """The date of the namespace's last published scheduled release."""
        c = r.releases.c
        value = self._conn.execute(sa.select(sa.func.max(c.scheduled_for)).where(
            c.namespace == namespace, c.kind == ReleaseKind.SCHEDULED.value,
            c.status == ReleaseStatus.PUBLISHED.value)).scalar()
        return dt.date.fromisoformat(value) if value else None

    def count_releases_like(self, prefix: str) -> int:
        return int(self._conn.execute(sa.select(sa.func.count()).select_from(r.releases).where(
            r.releases.c.name.startswith(prefix, autoescape=True))).scalar() or 0)

    # -- tags and their history --------------------------------------------------------------
    def _repository_id(self, repository: str) -> int | None:
        row = self._conn.execute(sa.select(r.repositories.c.id).where(
            r.repositories.c.name == repository)).first()
        return None if row is None else int(row[0])

    def _tag_digests(self, rid: int | None) -> dict[str, str]:
        if rid is None:
            return {}
        rows = self._conn.execute(sa.select(r.tags.c.name, r.tags.c.digest).where(
            r.tags.c.repository_id == rid))
        return {str(name): str(digest) for name, digest in rows}

    def tag_digests(self, repository: str) -> dict[str, str]:
        """Every tag of ``repository`` and its digest (empty for an unknown repository)."""
        return self._tag_digests(self._repository_id(repository))

    def repository_tags(self, repository: str, image_name: str) -> RepositoryTags:
        """What the stream planner needs of ``repository``: its tags, the NVRs of its
        registered builds and its end-of-life versions."""
        rid = self._repository_id(repository)
        c = r.candidates.c
        nvrs = {str(row.digest): NVR(row.name, row.version, row.release)
                for row in self._conn.execute(sa.select(
                    c.digest, c.name, c.version, c.release).where(c.repository == repository))}
        return RepositoryTags(repository, image_name, self._tag_digests(rid), nvrs,
                              self.eol_versions(repository), rid is not None)

    def has_manifest(self, repository: str, digest: str) -> bool:
        m = r.manifests.c
        return self._conn.execute(sa.select(m.digest).select_from(
            r.manifests.join(r.repositories, r.repositories.c.id == m.repository_id)).where(
                r.repositories.c.name == repository, m.digest == digest)).first() is not None

    def missing_content(self, repository: str, digest: str) -> list[str]:
        """What the manifest ``digest`` needs and the repository lacks: the manifest itself, a
        child manifest, or a blob no longer linked into the repository (a build damaged before
        the registry protected builds' content). Empty when the build can be pulled whole."""
        rid = self._repository_id(repository)
        if rid is None:
            return [digest]
        refs = r.manifest_references
        missing: list[str] = []
        todo, seen = [digest], set()
        while todo:
            current = todo.pop()
            if current in seen:
                continue
            seen.add(current)
            if not self.has_manifest(repository, current):
                missing.append(current)
                continue
            rows = self._conn.execute(sa.select(refs.c.child, refs.c.is_manifest).where(
                refs.c.repository_id == rid, refs.c.parent == current)).all()
            todo += [str(child) for child, is_manifest in rows if is_manifest]
            blobs = [str(child) for child, is_manifest in rows if not is_manifest]
            linked = {str(row[0]) for row in self._conn.execute(sa.select(
                r.repository_blobs.c.digest).where(r.repository_blobs.c.repository_id == rid,
                                                   r.repository_blobs.c.digest.in_(blobs)))}
            missing += [blob for blob in blobs if blob not in linked]
        return missing

    def rebuild_notes(self, builds: Iterable[tuple[str, str]]) -> dict[str, Any]:
        """Per repository, what the build (repository, digest) about to be released changed
        against the one released before it (:func:`strata.meta.rebuild_store.rebuild_notes`)."""
        return rebuild_notes(self._conn, builds)

    def tag_history(self, repository: str, tag: str | None = None,
                    until: float | None = None, limit: int = 1000) -> list[TagEvent]:
        """Tag events of a repository (or one tag), oldest first, up to ``until`` inclusive."""
        c = r.tag_events.c
        q = sa.select(r.tag_events).where(c.repository == repository)
        if tag is not None:
            q = q.where(c.tag == tag)
        if until is not None:
            q = q.where(c.at <= until)
        q = q.order_by(c.at.desc(), c.id.desc()).limit(limit)
        return [_event(row) for row in reversed(self._conn.execute(q).all())]

    def tag_events_page(self, repository: str, tag: str | None, until: float | None,
                        after: int | None, limit: int) -> list[TagEvent] | None:
        """Tag events of a repository (or one tag), oldest first, up to ``until`` inclusive,
        after the event whose id is ``after`` (None: that event is not the repository's)."""
        c = r.tag_events.c
        q = sa.select(r.tag_events).where(c.repository == repository)
        if tag is not None:
            q = q.where(c.tag == tag)
        if until is not None:
            q = q.where(c.at <= until)
        if after is not None:
            cursor = self._conn.execute(sa.select(c.at).where(
                c.id == after, c.repository == repository)).first()
            if cursor is None:
                return None
            q = q.where(sa.or_(c.at > cursor.at, sa.and_(c.at == cursor.at, c.id > after)))
        q = q.order_by(c.at, c.id).limit(limit)
        return [_event(row) for row in self._conn.execute(q)]


class ReleaseWriter(ReleaseReader):
    """What a release use-case writes, inside its one write transaction."""

    def add_namespace(self, ns: Namespace) -> None:
        self._conn.execute(sa.insert(r.namespaces).values(
            name=ns.name, dist_tag=ns.dist_tag, interval_days=ns.interval_days,
            anchor=ns.anchor.isoformat(), base_image=ns.base_image, created_at=ns.created_at))

    def set_namespace_base(self, name: str, base_image: str | None) -> None:
        self._conn.execute(sa.update(r.namespaces).where(r.namespaces.c.name == name).values(
            base_image=base_image))

    def add_image(self, image: Image) -> None:
        self._conn.execute(sa.insert(r.images).values(
            repository=image.repository, namespace=image.namespace, name=image.name,
            status=image.status.value, maintainers=json.dumps(list(image.maintainers)),
            source_url=image.source_url, source_branch=image.source_branch,
            created_at=image.created_at, summary=image.summary))
        search_sql.refresh(self._conn, image.repository, image.created_at)

    def add_build(self, build: Build, *, labels: Mapping[str, str] | None = None,
                  help_text: str | None = None) -> None:
        """Register a build; ``labels`` (its config's) and ``help_text`` (its help file)
        are kept for search."""
        self._conn.execute(sa.insert(r.candidates).values(
            repository=build.repository, digest=build.digest, name=build.nvr.name,
            version=build.nvr.version, release=build.nvr.release, status=build.status.value,
            advisories=json.dumps(list(build.advisories)), reason=build.reason,
            release_name=build.release_name, created_at=build.created_at,
            created_by=build.created_by))
        if labels is not None or help_text is not None:
            search_sql.record_texts(self._conn, build.repository, build.digest, labels,
                                    help_text)
        search_sql.refresh(self._conn, build.repository, build.created_at)

    def withdraw_build(self, build: Build, at: float, by: str, reason: str) -> bool:
        """Take a pending build out of the next release; False if it is no longer pending."""
        c = r.candidates.c
        result = self._conn.execute(sa.update(r.candidates).where(
            c.repository == build.repository, c.digest == build.digest,
            c.status == BuildStatus.CANDIDATE.value).values(
                status=BuildStatus.WITHDRAWN.value, withdrawn_at=at, withdrawn_by=by,
                withdrawn_reason=reason))
        if result.rowcount == 1:
            search_sql.forget_packages(self._conn, build.repository, build.digest)
        search_sql.refresh(self._conn, build.repository, at)
        return result.rowcount == 1

    def set_eol(self, repository: str, version: str, at: float, by: str) -> None:
        c = r.streams.c
        exists = self._conn.execute(sa.select(c.version).where(
            c.repository == repository, c.version == version)).first()
        if exists is None:
            self._conn.execute(sa.insert(r.streams).values(
                repository=repository, version=version, eol=True, eol_at=at, eol_by=by))
        else:
            self._conn.execute(sa.update(r.streams).where(
                c.repository == repository, c.version == version).values(
                    eol=True, eol_at=at, eol_by=by))
        search_sql.refresh(self._conn, repository, at)

    def add_release(self, release: Release) -> None:
        self._conn.execute(sa.insert(r.releases).values(
            name=release.name, kind=release.kind.value, namespace=release.namespace,
            scheduled_for=release.scheduled_for.isoformat() if release.scheduled_for else None,
            status=release.status.value, created_at=release.created_at,
            published_at=release.published_at, actor=release.actor,
            advisories=json.dumps(list(release.advisories)), reason=release.reason))

    def claim_release(self, name: str, at: float, actor: str) -> bool:
        """Mark a planned release published; False if it is not planned (someone else won)."""
        c = r.releases.c
        result = self._conn.execute(sa.update(r.releases).where(
            c.name == name, c.status == ReleaseStatus.PLANNED.value).values(
                status=ReleaseStatus.PUBLISHED.value, published_at=at, actor=actor))
        return result.rowcount == 1

    def move_tag(self, move: TagMove, at: float, *, actor: str, release: str | None,
                 reason: str | None) -> str | None:
        """Point a tag of a known repository at ``move.digest``, with its history event;
        returns the digest it had."""
        rid = self._repository_id(move.repository)
        if rid is None:
            raise LookupError(f"unknown repository {move.repository!r}")
        return write_tag(self._conn, rid, move.tag, move.digest, at, actor=actor,
                         release=release, reason=reason)

    def publish(self, release: Release, moves: Sequence[TagMove], released: Sequence[Build],
                notes: dict[str, Any], markdown: str, at: float, *,
                after_write: Callable[[str, str], None] | None = None) -> None:
        """The writes of publishing ``release`` (claimed or added in this transaction): every
        tag move, the builds released, the release items, the notes, the webhook event and the
        rebuilds of the images built on a stream it moved."""
        actor = release.actor or "release-engine"
        for move in moves:
            self.move_tag(move, at, actor=actor, release=release.name, reason=release.reason)
            if after_write is not None:
                after_write(move.repository, move.tag)
        for build in released:
            self._conn.execute(sa.update(r.candidates).where(
                r.candidates.c.repository == build.repository,
                r.candidates.c.digest == build.digest).values(
                    status=BuildStatus.RELEASED.value, release_name=release.name))
            self._conn.execute(sa.insert(r.release_items).values(
                release_name=release.name, repository=build.repository, digest=build.digest,
                nvr=str(build.nvr)))
        for repository in sorted({build.repository for build in released}):
            search_sql.refresh(self._conn, repository, at)
        self._conn.execute(sa.update(r.releases).where(
            r.releases.c.name == release.name).values(
                notes_json=json.dumps(notes, sort_keys=True), notes_md=markdown))
        enqueue(self._conn, "release.published", notes, at)
        queue_dependants(self._conn, release.name, at)

    def trust(self) -> TrustWriter:
        """The trust domain's writer (release keys, signature manifests) on this same
        transaction: a release signs what it publishes before it commits."""
        return TrustWriter(self._conn)

    def set_review_grant(self, account: str, repository: str, granted: bool) -> bool:
        """Give (or take) ``account`` the maintainer grant on ``repository``
        (:func:`strata.meta.review_sql.set_grant`)."""
        return review_sql.set_grant(self._conn, account, repository, granted)

    def record_review_event(self, repository: str, event: str, actor: str, at: float, *,
                            reason: str | None = None,
                            detail: dict[str, Any] | None = None) -> None:
        """Append to the image's review history (``image_events``)."""
        review_sql.record_event(self._conn, repository, event, actor, at, reason=reason,
                                detail=detail)

    def enqueue(self, event: str, data: dict[str, Any], at: float) -> int:
        """Queue a webhook event, committed with this transaction."""
        return enqueue(self._conn, event, data, at)


class ReleaseStore:
    """The release domain's way to the database (a :class:`Database`, with its clock)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def now(self) -> float:
        return self.db.now()

    def today(self) -> dt.date:
        return self.db.today()

    async def read(self, fn: Callable[[ReleaseReader], T]) -> T:
        """``fn`` in one read-only transaction, on a thread."""
        return await self.db.read(lambda conn: fn(ReleaseReader(conn)))

    async def write(self, fn: Callable[[ReleaseWriter], T]) -> T:
        """``fn`` in one write transaction: all of it is committed, or none (a uniqueness race
        raises :class:`strata.meta.errors.Conflict`)."""
        return await self.db.write(lambda conn, _batch: fn(ReleaseWriter(conn)))
