"""Every SQLite connection of a :class:`Database` keeps a small page cache (issue #18: the
soak's heap growth; ``strata.meta.connection.CACHE_KIB``)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from strata.meta.connection import CACHE_KIB
from strata.meta.database import Batch, Database

items = sa.Table("items", sa.MetaData(), sa.Column("n", sa.Integer, primary_key=True),
                 sa.Column("data", sa.LargeBinary))


def _cache_size(conn: sa.Connection) -> int:
    raw = conn.connection.driver_connection
    assert raw is not None
    return int(raw.execute("PRAGMA cache_size").fetchone()[0])


def test_each_connection_caches_at_most_cache_kib(tmp_path: Path) -> None:
    assert 0 < CACHE_KIB < 2000  # below SQLite's default (2000 KiB)
    db = Database(f"sqlite:///{tmp_path / 'c.db'}")
    try:
        with db.sa_engine.begin() as conn:
            items.create(conn)
        seen: dict[str, int] = {}

        def write(conn: sa.Connection, _batch: Batch) -> None:
            seen["writer"] = _cache_size(conn)
            conn.execute(sa.insert(items), [{"n": i, "data": bytes(3000)} for i in range(2000)])

        db.write_sync(write)
        seen["read"] = db.read_sync(_cache_size)
        count = db.compiled(sa.select(sa.func.count()).select_from(items))
        pragma = db.compiled(sa.text("PRAGMA cache_size"))
        # The hot reader: one connection per calling thread.
        row: Any = db.fetch_one_sync(pragma)
        seen["hot reader"] = int(row[0])
        other: list[int] = []
        thread = threading.Thread(target=lambda: other.append(int(db.fetch_one_sync(pragma)[0])))
        thread.start()
        thread.join()
        seen["hot reader, another thread"] = other[0]
        assert seen == dict.fromkeys(seen, -CACHE_KIB)
        # A scan of a table bigger than the cache (~6 MiB) still answers.
        assert db.fetch_one_sync(count) == (2000,)
    finally:
        db.close()
