"""The metadata side of ``strata scrub``: every blob row and every stored manifest, in pages
(keyset pagination, so a scrub of a big registry holds no long transaction). Each page is one
read-only transaction on a worker thread (:meth:`Database.read`)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from strata.meta import schema_registry as t
from strata.meta.database import Database


class SqlScrubStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def blobs_after(self, after: str, limit: int) -> list[tuple[str, int]]:
        """(digest, size) of the blob rows after ``after`` in digest order."""
        q = (sa.select(t.blobs.c.digest, t.blobs.c.size)
             .where(t.blobs.c.digest > after).order_by(t.blobs.c.digest).limit(limit))

        def go(conn: sa.Connection) -> list[tuple[str, int]]:
            return [(r[0], r[1]) for r in conn.execute(q)]
        return await self._db.read(go)

    async def manifests_after(self, after: tuple[str, str], limit: int
                              ) -> list[tuple[str, str, bytes]]:
        """(repository, digest, stored bytes) after ``after`` = (repository, digest)."""
        r, m = t.repositories, t.manifests
        key = sa.tuple_(r.c.name, m.c.digest)
        q = (sa.select(r.c.name, m.c.digest, m.c.content)
             .select_from(m.join(r, r.c.id == m.c.repository_id))
             .where(key > sa.tuple_(sa.literal(after[0]), sa.literal(after[1])))
             .order_by(r.c.name, m.c.digest).limit(limit))

        def go(conn: sa.Connection) -> list[tuple[str, str, bytes]]:
            return [(row[0], row[1], _bytes(row[2])) for row in conn.execute(q)]
        return await self._db.read(go)


def _bytes(value: Any) -> bytes:
    # SQLite keeps whatever type was written: text where bytes belong is damage to report too.
    return value.encode("utf-8", "surrogateescape") if isinstance(value, str) else bytes(value)
