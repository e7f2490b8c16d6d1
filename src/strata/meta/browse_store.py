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
from typing import Any, TypeVar

import sqlalchemy as sa

from strata.meta import schema as r
from strata.meta.database import Database
from strata.meta.rebuild_store import inputs_of
from strata.meta.release_store import ReleaseReader
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


def image_extras(conn: sa.Connection, repository: str, *, events: int) -> ImageExtras:
    c = r.tag_events.c
    newest = (sa.select(sa.func.max(c.id)).where(c.repository == repository)
              .group_by(c.tag).scalar_subquery())
    last = conn.execute(sa.select(r.tag_events).where(c.repository == repository,
                                                      c.id.in_(newest))).all()
    recent = conn.execute(sa.select(r.tag_events).where(c.repository == repository)
                          .order_by(c.at.desc(), c.id.desc()).limit(events)).all()
    q = review_requests.c
    reviews = conn.execute(sa.select(review_requests).where(q.repository == repository)
                           .order_by(q.id.desc()).limit(20)).all()
    return ImageExtras({row.tag: _event(row) for row in last},
                       tuple(_event(row) for row in recent),
                       tuple(_review(row) for row in reviews))


def image_rows(conn: sa.Connection, repository: str, *, events: int,
               choose: Choose) -> ImageRows | None:
    """The image, its tags, builds, streams, extras and the chosen build's inputs (None:
    no such image)."""
    tx = ReleaseReader(conn)
    image = tx.image(repository)
    if image is None:
        return None
    tags = tx.tag_digests(repository)
    builds = tx.builds(repository=repository)
    shown = choose(tags, builds)
    return ImageRows(image, tags, tuple(builds), tuple(tx.streams(repository)),
                     image_extras(conn, repository, events=events), shown,
                     None if shown is None else inputs_of(conn, repository, shown))


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
