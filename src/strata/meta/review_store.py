"""The review use-cases' way to the database (issue 14): review requests, their comments and
checks, image events, image edits and maintainer grants, on top of
:class:`strata.meta.database.Database` (the SQL is :mod:`strata.meta.review_sql`).

:mod:`strata.review` gives :meth:`ReviewStore.read` / :meth:`ReviewStore.write` a function of a
:class:`ReviewReader` / :class:`ReviewWriter`, bound to one transaction; they extend the release
side's reader and writer (images, namespaces), so a review decision reads and writes an image
and its request at once. Images come back as the release domain's frozen values; requests and
events as the JSON the API answers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from strata.meta import review_sql
from strata.meta.database import Database
from strata.meta.release_store import ReleaseReader, ReleaseWriter

T = TypeVar("T")


class ReviewReader(ReleaseReader):
    """What a review use-case reads, inside one transaction."""

    def request(self, request_id: int, *, lock: bool = False) -> dict[str, Any] | None:
        """A review request with its comments; ``lock``: row-locked until commit."""
        return review_sql.get_request(self._conn, request_id, lock=lock)

    def open_request_of(self, repository: str) -> int | None:
        return review_sql.open_request_of(self._conn, repository)

    def requests(self, *, status: str | None = None, namespace: str | None = None,
                 limit: int = 500, before: int | None = None) -> list[dict[str, Any]]:
        return review_sql.list_requests(self._conn, status=status, namespace=namespace,
                                        limit=limit, before=before)

    def image_events(self, repository: str) -> list[dict[str, Any]]:
        return review_sql.events(self._conn, repository)


class ReviewWriter(ReleaseWriter, ReviewReader):
    """What a review use-case writes, inside its one write transaction (the image writes of
    :class:`ReleaseWriter` included)."""

    def update_image(self, repository: str, values: Mapping[str, Any]) -> None:
        """Set fields of an image (``source_url``, ``source_branch``, ``summary``, ``status``;
        ``maintainers`` as a list)."""
        review_sql.update_image(self._conn, repository, values)

    def add_request(self, *, repository: str, namespace: str, submitter: str,
                    source_url: str, source_branch: str | None, at: float) -> int:
        return review_sql.insert_request(
            self._conn, repository=repository, namespace=namespace, submitter=submitter,
            source_url=source_url, source_branch=source_branch, at=at)

    def set_checks(self, request_id: int, checks: Sequence[Mapping[str, Any]]) -> None:
        review_sql.set_checks(self._conn, request_id, checks)

    def decide(self, request_id: int, status: str, by: str, at: float) -> bool:
        """Close an open request; False when it is no longer open."""
        return review_sql.decide(self._conn, request_id, status, by, at)

    def add_comment(self, request_id: int, author: str, kind: str, text: str,
                    at: float) -> None:
        review_sql.add_comment(self._conn, request_id, author, kind, text, at)


class ReviewStore:
    """The review domain's way to the database (a :class:`Database`, with its clock)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def now(self) -> float:
        return self.db.now()

    async def read(self, fn: Callable[[ReviewReader], T]) -> T:
        """``fn`` in one read-only transaction, on a thread."""
        return await self.db.read(lambda conn: fn(ReviewReader(conn)))

    async def write(self, fn: Callable[[ReviewWriter], T]) -> T:
        """``fn`` in one write transaction: all of it is committed, or none (a uniqueness race
        raises :class:`strata.meta.errors.Conflict`)."""
        return await self.db.write(lambda conn, _batch: fn(ReviewWriter(conn)))
