"""SQL of the release engine: plain functions on a connection (the caller owns the transaction).

Tag writes go straight to the registry's ``tags`` table (:func:`write_tag`, shared with the
registry's own tag writes), with their
``tag_events`` row, inside the caller's transaction: this is how the release engine moves tags
past the registry's write policy, which guards only the ``/v2/`` path.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa

from strata.meta import release_tables as r
from strata.meta import tables as t
from strata.meta.release_tables import write_tag as write_tag
from strata.release.model import (
    Build,
    BuildStatus,
    Image,
    ImageStatus,
    Namespace,
    Release,
    ReleaseKind,
    ReleaseStatus,
    Stream,
    TagEvent,
    is_cosign_tag,
)
from strata.release.nvr import NVR, InvalidNVR
from strata.release.streams import TagKind, TagState, classify_tag


def _json_list(text: str | None) -> tuple[str, ...]:
    return tuple(json.loads(text)) if text else ()


# -- namespaces ------------------------------------------------------------------------------
def _namespace(row: Any) -> Namespace:
    return Namespace(row.name, row.dist_tag, int(row.interval_days),
                     dt.date.fromisoformat(row.anchor), row.base_image, row.created_at)


def get_namespace(conn: sa.Connection, name: str) -> Namespace | None:
    row = conn.execute(sa.select(r.namespaces).where(r.namespaces.c.name == name)).first()
    return None if row is None else _namespace(row)


def list_namespaces(conn: sa.Connection) -> list[Namespace]:
    rows = conn.execute(sa.select(r.namespaces).order_by(r.namespaces.c.name))
    return [_namespace(row) for row in rows]


def insert_namespace(conn: sa.Connection, ns: Namespace) -> None:
    conn.execute(sa.insert(r.namespaces).values(
        name=ns.name, dist_tag=ns.dist_tag, interval_days=ns.interval_days,
        anchor=ns.anchor.isoformat(), base_image=ns.base_image, created_at=ns.created_at))


def set_namespace_base(conn: sa.Connection, name: str, base_image: str | None) -> None:
    conn.execute(sa.update(r.namespaces).where(r.namespaces.c.name == name).values(
        base_image=base_image))


# -- images ----------------------------------------------------------------------------------
def _image(row: Any) -> Image:
    return Image(row.repository, row.namespace, row.name, ImageStatus(row.status),
                 _json_list(row.maintainers), row.source_url, row.source_branch, row.created_at,
                 row.summary)


def get_image(conn: sa.Connection, repository: str, *, lock: bool = False) -> Image | None:
    q = sa.select(r.images).where(r.images.c.repository == repository)
    if lock:
        q = q.with_for_update()
    row = conn.execute(q).first()
    return None if row is None else _image(row)


def lock_images(conn: sa.Connection, repositories: Iterable[str]) -> None:
    """Serialise release writes per repository (row locks on PostgreSQL, in name order)."""
    for repository in sorted(set(repositories)):
        get_image(conn, repository, lock=True)


def list_images(conn: sa.Connection, namespace: str | None = None) -> list[Image]:
    q = sa.select(r.images).order_by(r.images.c.repository)
    if namespace is not None:
        q = q.where(r.images.c.namespace == namespace)
    return [_image(row) for row in conn.execute(q)]


def insert_image(conn: sa.Connection, image: Image) -> None:
    conn.execute(sa.insert(r.images).values(
        repository=image.repository, namespace=image.namespace, name=image.name,
        status=image.status.value, maintainers=json.dumps(list(image.maintainers)),
        source_url=image.source_url, source_branch=image.source_branch,
        created_at=image.created_at, summary=image.summary))


def is_managed(conn: sa.Connection, repository: str) -> bool:
    return conn.execute(sa.select(r.images.c.repository).where(
        r.images.c.repository == repository)).first() is not None


# -- builds (candidates) ---------------------------------------------------------------------
def _build(row: Any) -> Build:
    return Build(row.repository, row.digest, NVR(row.name, row.version, row.release),
                 BuildStatus(row.status), _json_list(row.advisories), row.reason,
                 row.release_name, row.created_at, row.created_by, row.withdrawn_at,
                 row.withdrawn_by, row.withdrawn_reason)


def get_build(conn: sa.Connection, repository: str, digest: str) -> Build | None:
    row = conn.execute(sa.select(r.candidates).where(
        r.candidates.c.repository == repository, r.candidates.c.digest == digest)).first()
    return None if row is None else _build(row)


def get_build_by_nvr(conn: sa.Connection, repository: str, version: str,
                     release: str) -> Build | None:
    row = conn.execute(sa.select(r.candidates).where(
        r.candidates.c.repository == repository, r.candidates.c.version == version,
        r.candidates.c.release == release)).first()
    return None if row is None else _build(row)


def list_builds(conn: sa.Connection, *, namespace: str | None = None,
                repository: str | None = None,
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
    return [_build(row) for row in conn.execute(q.order_by(c.repository, c.id))]


def insert_build(conn: sa.Connection, build: Build) -> None:
    conn.execute(sa.insert(r.candidates).values(
        repository=build.repository, digest=build.digest, name=build.nvr.name,
        version=build.nvr.version, release=build.nvr.release, status=build.status.value,
        advisories=json.dumps(list(build.advisories)), reason=build.reason,
        release_name=build.release_name, created_at=build.created_at,
        created_by=build.created_by))


def mark_released(conn: sa.Connection, builds: Sequence[Build], release: str) -> None:
    for build in builds:
        conn.execute(sa.update(r.candidates).where(
            r.candidates.c.repository == build.repository,
            r.candidates.c.digest == build.digest).values(
                status=BuildStatus.RELEASED.value, release_name=release))
        conn.execute(sa.insert(r.release_items).values(
            release_name=release, repository=build.repository, digest=build.digest,
            nvr=str(build.nvr)))


def withdraw_build(conn: sa.Connection, build: Build, at: float, by: str, reason: str) -> bool:
    """Take a pending build out of the next release; False if it is no longer pending."""
    c = r.candidates.c
    result = conn.execute(sa.update(r.candidates).where(
        c.repository == build.repository, c.digest == build.digest,
        c.status == BuildStatus.CANDIDATE.value).values(
            status=BuildStatus.WITHDRAWN.value, withdrawn_at=at, withdrawn_by=by,
            withdrawn_reason=reason))
    return result.rowcount == 1


# -- streams ---------------------------------------------------------------------------------
def list_streams(conn: sa.Connection, repository: str) -> list[Stream]:
    rows = conn.execute(sa.select(r.streams).where(r.streams.c.repository == repository)
                        .order_by(r.streams.c.version))
    return [Stream(row.repository, row.version, bool(row.eol), row.eol_at, row.eol_by)
            for row in rows]


def eol_versions(conn: sa.Connection, repository: str) -> set[str]:
    return {s.version for s in list_streams(conn, repository) if s.eol}


def set_eol(conn: sa.Connection, repository: str, version: str, at: float, by: str) -> None:
    c = r.streams.c
    exists = conn.execute(sa.select(c.version).where(
        c.repository == repository, c.version == version)).first()
    if exists is None:
        conn.execute(sa.insert(r.streams).values(
            repository=repository, version=version, eol=True, eol_at=at, eol_by=by))
    else:
        conn.execute(sa.update(r.streams).where(
            c.repository == repository, c.version == version).values(
                eol=True, eol_at=at, eol_by=by))


# -- releases --------------------------------------------------------------------------------
def _release(row: Any) -> Release:
    return Release(
        row.name, ReleaseKind(row.kind), row.namespace,
        dt.date.fromisoformat(row.scheduled_for) if row.scheduled_for else None,
        ReleaseStatus(row.status), row.created_at, row.published_at, row.actor,
        _json_list(row.advisories), row.reason, row.notes_md,
        json.loads(row.notes_json) if row.notes_json else None)


def get_release(conn: sa.Connection, name: str) -> Release | None:
    row = conn.execute(sa.select(r.releases).where(r.releases.c.name == name)).first()
    return None if row is None else _release(row)


def list_releases(conn: sa.Connection, namespace: str | None = None,
                  limit: int = 100) -> list[Release]:
    c = r.releases.c
    q = sa.select(r.releases).order_by(
        sa.func.coalesce(c.published_at, c.created_at).desc(), c.name.desc()).limit(limit)
    if namespace is not None:
        q = q.where(c.namespace == namespace)
    return [_release(row) for row in conn.execute(q)]


def releases_of_date(conn: sa.Connection, day: str) -> list[str]:
    """Names of the releases a date names: ``<ns>-<day>`` or ``<ns>-security-<day>-<n>``."""
    c = r.releases.c
    rows = conn.execute(sa.select(c.name).where(sa.or_(
        c.name.endswith(f"-{day}", autoescape=True),
        c.name.contains(f"-security-{day}-", autoescape=True))).order_by(c.name))
    return [str(row[0]) for row in rows]


def insert_release(conn: sa.Connection, release: Release) -> None:
    conn.execute(sa.insert(r.releases).values(
        name=release.name, kind=release.kind.value, namespace=release.namespace,
        scheduled_for=release.scheduled_for.isoformat() if release.scheduled_for else None,
        status=release.status.value, created_at=release.created_at,
        published_at=release.published_at, actor=release.actor,
        advisories=json.dumps(list(release.advisories)), reason=release.reason))


def claim_release(conn: sa.Connection, name: str, at: float, actor: str) -> bool:
    """Mark a planned release published; False if it is not planned (someone else won)."""
    c = r.releases.c
    result = conn.execute(sa.update(r.releases).where(
        c.name == name, c.status == ReleaseStatus.PLANNED.value).values(
            status=ReleaseStatus.PUBLISHED.value, published_at=at, actor=actor))
    return result.rowcount == 1


def store_notes(conn: sa.Connection, name: str, notes: dict[str, Any], markdown: str) -> None:
    conn.execute(sa.update(r.releases).where(r.releases.c.name == name).values(
        notes_json=json.dumps(notes, sort_keys=True), notes_md=markdown))


def last_scheduled(conn: sa.Connection, namespace: str) -> dt.date | None:
    """The date of the namespace's last published scheduled release."""
    c = r.releases.c
    value = conn.execute(sa.select(sa.func.max(c.scheduled_for)).where(
        c.namespace == namespace, c.kind == ReleaseKind.SCHEDULED.value,
        c.status == ReleaseStatus.PUBLISHED.value)).scalar()
    return dt.date.fromisoformat(value) if value else None


def count_releases_like(conn: sa.Connection, prefix: str) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(r.releases).where(
        r.releases.c.name.startswith(prefix, autoescape=True))).scalar() or 0)


# -- tags and their history ------------------------------------------------------------------
def repository_id(conn: sa.Connection, repository: str) -> int | None:
    row = conn.execute(sa.select(t.repositories.c.id).where(
        t.repositories.c.name == repository)).first()
    return None if row is None else int(row[0])


def tag_digests(conn: sa.Connection, rid: int) -> dict[str, str]:
    rows = conn.execute(sa.select(t.tags.c.name, t.tags.c.digest).where(
        t.tags.c.repository_id == rid))
    return {str(name): str(digest) for name, digest in rows}


def has_manifest(conn: sa.Connection, rid: int, digest: str) -> bool:
    return conn.execute(sa.select(t.manifests.c.digest).where(
        t.manifests.c.repository_id == rid, t.manifests.c.digest == digest)).first() is not None


def missing_content(conn: sa.Connection, rid: int, digest: str) -> list[str]:
    """What the manifest ``digest`` needs and the repository lacks: the manifest itself, a
    child manifest, or a blob no longer linked into the repository (a build damaged before the
    registry protected builds' content). Empty when the build can be pulled whole."""
    refs = t.manifest_references
    missing: list[str] = []
    todo, seen = [digest], set()
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        if not has_manifest(conn, rid, current):
            missing.append(current)
            continue
        rows = conn.execute(sa.select(refs.c.child, refs.c.is_manifest).where(
            refs.c.repository_id == rid, refs.c.parent == current)).all()
        todo += [str(child) for child, is_manifest in rows if is_manifest]
        blobs = [str(child) for child, is_manifest in rows if not is_manifest]
        linked = {str(row[0]) for row in conn.execute(sa.select(
            t.repository_blobs.c.digest).where(t.repository_blobs.c.repository_id == rid,
                                               t.repository_blobs.c.digest.in_(blobs)))}
        missing += [blob for blob in blobs if blob not in linked]
    return missing


def tag_states(conn: sa.Connection, repository: str, image_name: str,
               digests: dict[str, str]) -> dict[str, TagState]:
    """What each tag points to, as the stream planner needs it.

    A digest's NVR comes from the registered builds, else from an NVR tag pointing at it
    (``130-1.f25docker`` names its own version and release). Tags pointing at builds whose
    NVR is unknown either way (pushed before the image was managed, cosign tags) are left out.
    """
    c = r.candidates.c
    rows = conn.execute(sa.select(c.digest, c.name, c.version, c.release).where(
        c.repository == repository))
    nvr_of: dict[str, NVR] = {row.digest: NVR(row.name, row.version, row.release)
                              for row in rows}
    for tag, digest in digests.items():
        if is_cosign_tag(tag):
            continue
        if digest not in nvr_of and classify_tag(tag) is TagKind.NVR and tag.count("-") == 1:
            version, release = tag.split("-")
            try:
                nvr_of[digest] = NVR(image_name, version, release)
            except InvalidNVR:
                continue
    return {tag: TagState(tag, digest, nvr_of[digest])
            for tag, digest in digests.items() if digest in nvr_of and not is_cosign_tag(tag)}


def _event(row: Any) -> TagEvent:
    return TagEvent(row.repository, row.tag, row.old_digest, row.new_digest, row.actor,
                    row.release_name, row.reason, row.at)


def tag_history(conn: sa.Connection, repository: str, tag: str | None = None,
                until: float | None = None, limit: int = 1000) -> list[TagEvent]:
    """Tag events of a repository (or one tag), oldest first, up to ``until`` inclusive."""
    c = r.tag_events.c
    q = sa.select(r.tag_events).where(c.repository == repository)
    if tag is not None:
        q = q.where(c.tag == tag)
    if until is not None:
        q = q.where(c.at <= until)
    q = q.order_by(c.at.desc(), c.id.desc()).limit(limit)
    return [_event(row) for row in reversed(conn.execute(q).all())]
