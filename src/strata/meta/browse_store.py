"""SQL of the catalog's pages (read-only): what moved recently, each tag's last move, the newest
tag events, an image's review requests and the package list recorded for a build.

The catalog (:mod:`strata.catalog.views`) composes these with the release engine's reads; the
values are the release domain's (:class:`~strata.release.model.TagEvent`) or small frozen
records declared here (``meta`` imports no catalog code). Every query is bounded and served by
an index: the newest events by the ``tag_events`` primary key, one repository's by
``ix_tag_events_tag``, review requests by ``ix_review_requests_repository``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, TypeVar

import sqlalchemy as sa

from strata.meta import schema as r
from strata.meta.database import Database
from strata.meta.fastread import run
from strata.meta.rebuild_store import _inputs as inputs_row
from strata.meta.release_store import _build as build_row
from strata.meta.schema_rebuild import candidate_inputs
from strata.meta.schema_review import review_requests
from strata.release.model import Build, Image, ImageStatus, Stream, TagEvent
from strata.release.rebuild import BuildInputs

T = TypeVar("T")

RECENT_SCAN = 2000
"""How many of the newest tag events the home page looks through for recently moved images."""


@dataclass(frozen=True, slots=True)
class RecentRepository:
    repository: str
    at: float  # its newest tag event


@dataclass(frozen=True, slots=True)
class ReviewSummary:
    """A review request of an image, without its comments."""

    id: int
    repository: str
    submitter: str
    status: str
    checks: tuple[dict[str, Any], ...]
    created_at: float
    decided_at: float | None
    decided_by: str | None


@dataclass(frozen=True)
class ImageRows:
    """Everything an image page reads from the database, read in one transaction."""

    image: Image
    tags: dict[str, str]  # tag -> digest
    builds: tuple[Build, ...]  # every registered build, oldest first
    streams: tuple[Stream, ...]  # stream rows (EOL flags)
    extras: ImageExtras
    shown: str | None  # the digest ``choose`` picked
    inputs: BuildInputs | None  # what that build was made from


Choose = Callable[[dict[str, str], Sequence[Build]], "str | None"]
"""Picks the build a page shows, from the tags and the builds (a pure function)."""


@dataclass(frozen=True, slots=True)
class ImageExtras:
    """What an image page shows beyond the engine's image details."""

    last_moves: dict[str, TagEvent]  # tag -> its newest event
    recent_events: tuple[TagEvent, ...]  # newest first
    reviews: tuple[ReviewSummary, ...]  # newest first


def image_row(row: Any) -> Image:
    return Image(row.repository, row.namespace, row.name, ImageStatus(row.status),
                 tuple(json.loads(row.maintainers or "[]")), row.source_url, row.source_branch,
                 row.created_at, row.summary)


def _event(row: Any) -> TagEvent:
    return TagEvent(row.repository, row.tag, row.old_digest, row.new_digest, row.actor,
                    row.release_name, row.reason, row.at)


def _review(row: Any) -> ReviewSummary:
    return ReviewSummary(int(row.id), row.repository, row.submitter, row.status,
                         tuple(json.loads(row.checks or "[]")), row.created_at,
                         row.decided_at, row.decided_by)


def recent_repositories(conn: sa.Connection, limit: int) -> list[RecentRepository]:
    """The repositories whose tags moved last, newest first (from the newest tag events)."""
    c = r.tag_events.c
    rows = conn.execute(sa.select(c.repository, c.at).order_by(c.id.desc())
                        .limit(RECENT_SCAN)).all()
    seen: dict[str, float] = {}
    for row in rows:
        if row.repository not in seen:
            seen[row.repository] = row.at
            if len(seen) >= limit:
                break
    return [RecentRepository(repo, at) for repo, at in seen.items()]


def images_named(conn: sa.Connection, repositories: Sequence[str]) -> dict[str, Image]:
    if not repositories:
        return {}
    rows = conn.execute(sa.select(r.images).where(r.images.c.repository.in_(
        list(repositories))))
    return {row.repository: image_row(row) for row in rows}


def namespace_images(conn: sa.Connection, namespace: str, *, after: str | None,
                     limit: int) -> list[Image]:
    """A page of a namespace's images in repository order, after ``after``."""
    c = r.images.c
    q = sa.select(r.images).where(c.namespace == namespace).order_by(c.repository).limit(limit)
    if after is not None:
        q = q.where(c.repository > after)
    return [image_row(row) for row in conn.execute(q)]


# -- the image page's statements: compiled once per dialect, run on the driver (fastread) ------
def _q_image() -> sa.ClauseElement:
    return sa.select(r.images).where(r.images.c.repository == sa.bindparam("repository"))


def _q_tags() -> sa.ClauseElement:
    return sa.select(r.tags.c.name, r.tags.c.digest).select_from(
        r.tags.join(r.repositories, r.repositories.c.id == r.tags.c.repository_id)).where(
        r.repositories.c.name == sa.bindparam("repository"))


def _q_builds() -> sa.ClauseElement:
    c = r.candidates.c
    return sa.select(r.candidates).where(c.repository == sa.bindparam("repository")).order_by(
        c.id)


def _q_streams() -> sa.ClauseElement:
    c = r.streams.c
    return sa.select(r.streams).where(c.repository == sa.bindparam("repository")).order_by(
        c.version)


def _q_last_moves() -> sa.ClauseElement:
    c = r.tag_events.c
    newest = (sa.select(sa.func.max(c.id)).where(c.repository == sa.bindparam("repository"))
              .group_by(c.tag).scalar_subquery())
    return sa.select(r.tag_events).where(c.repository == sa.bindparam("repository"),
                                         c.id.in_(newest))


def _q_recent_events() -> sa.ClauseElement:
    c = r.tag_events.c
    return (sa.select(r.tag_events).where(c.repository == sa.bindparam("repository"))
            .order_by(c.at.desc(), c.id.desc()).limit(sa.bindparam("limit")))


def _q_reviews() -> sa.ClauseElement:
    q = review_requests.c
    return (sa.select(review_requests).where(q.repository == sa.bindparam("repository"))
            .order_by(q.id.desc()).limit(20))


def _q_inputs() -> sa.ClauseElement:
    c = candidate_inputs.c
    return sa.select(candidate_inputs).where(c.repository == sa.bindparam("repository"),
                                             c.digest == sa.bindparam("digest"))


def _rows(conn: sa.Connection, build: Callable[[], sa.ClauseElement],
          **values: Any) -> list[Any]:
    """The rows of a compiled statement, each with its columns as attributes."""
    cur = run(conn, build, **values)
    names = [d[0] for d in cur.description]
    return [SimpleNamespace(**dict(zip(names, row, strict=True))) for row in cur.fetchall()]


def image_rows(conn: sa.Connection, repository: str, *, events: int,
               choose: Choose) -> ImageRows | None:
    """The image, its tags, builds, streams, extras and the chosen build's inputs (None:
    no such image): one transaction, each statement compiled once."""
    found = _rows(conn, _q_image, repository=repository)
    if not found:
        return None
    tags = {str(row.name): str(row.digest) for row in _rows(conn, _q_tags, repository=repository)}
    builds = [build_row(row) for row in _rows(conn, _q_builds, repository=repository)]
    streams = tuple(Stream(row.repository, row.version, bool(row.eol), row.eol_at, row.eol_by)
                    for row in _rows(conn, _q_streams, repository=repository))
    last = _rows(conn, _q_last_moves, repository=repository)
    recent = _rows(conn, _q_recent_events, repository=repository, limit=events)
    reviews = _rows(conn, _q_reviews, repository=repository)
    extras = ImageExtras({row.tag: _event(row) for row in last},
                         tuple(_event(row) for row in recent),
                         tuple(_review(row) for row in reviews))
    shown = choose(tags, builds)
    inputs = None
    if shown is not None:
        got = _rows(conn, _q_inputs, repository=repository, digest=shown)
        inputs = inputs_row(got[0]) if got else None
    return ImageRows(image_row(found[0]), tags, tuple(builds), streams, extras, shown, inputs)


class BrowseStore:
    """The catalog pages' reads, each one read-only transaction."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def now(self) -> float:
        return self.db.now()

    async def _read(self, fn: Callable[[sa.Connection], T]) -> T:
        return await self.db.read(fn)

    async def recent_repositories(self, limit: int = 12) -> list[RecentRepository]:
        return await self._read(lambda conn: recent_repositories(conn, limit))

    async def images_named(self, repositories: Sequence[str]) -> dict[str, Image]:
        return await self._read(lambda conn: images_named(conn, repositories))

    async def namespace_images(self, namespace: str, *, after: str | None = None,
                               limit: int = 100) -> list[Image]:
        return await self._read(lambda conn: namespace_images(conn, namespace, after=after,
                                                              limit=limit))

    async def image_rows(self, repository: str, *, events: int,
                         choose: Choose) -> ImageRows | None:
        return await self._read(lambda conn: image_rows(conn, repository, events=events,
                                                        choose=choose))
