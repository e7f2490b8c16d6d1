"""The ``Database`` seam on SQLite and PostgreSQL: one writer (group commit on SQLite), reads
in a read-only transaction, the compiled hot-read path, the clock, the thread for slow work,
and a uniqueness race reported as ``Conflict``."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading

import pytest
import sqlalchemy as sa

from strata.meta import schema as t
from strata.meta.database import Batch, Database, Job
from strata.meta.errors import Conflict
from support.clock import SettableClock as Clock


def add_repo(name: str, hook: list[list[str]] | None = None) -> Job[str]:
    def job(conn: sa.Connection, batch: Batch) -> str:
        conn.execute(sa.insert(t.repositories).values(name=name, created_at=1.0))
        if hook is not None:
            batch.before_commit(hook.append, name)
        return name.upper()
    return job


def repo_names(conn: sa.Connection) -> list[str]:
    return [r[0] for r in conn.execute(
        sa.select(t.repositories.c.name).order_by(t.repositories.c.name))]


def test_dialect_and_clock(database: Database, backend: str, clock: Clock) -> None:
    assert database.dialect == {"sqlite": "sqlite", "postgres": "postgresql"}[backend]
    clock.now = 86400.0 * 365 + 5
    assert database.now() == 86400.0 * 365 + 5
    assert database.today() == dt.date(1971, 1, 1)


def test_the_url_hides_a_password() -> None:
    db = Database("postgresql+psycopg://u:s3cret@127.0.0.1:1/x")  # no connection is made
    try:
        assert "s3cret" not in db.url and db.url.startswith("postgresql+psycopg://u:")
    finally:
        db.close()


async def test_write_commits_and_returns_the_job_value(database: Database) -> None:
    hooks: list[list[str]] = []
    got = await asyncio.gather(*(database.write(add_repo(f"r{i}", hooks)) for i in range(5)))
    assert got == [f"R{i}" for i in range(5)]
    assert database.read_sync(repo_names) == [f"r{i}" for i in range(5)]
    assert sorted(n for h in hooks for n in h) == [f"r{i}" for i in range(5)]
    assert database.jobs == 5 and 1 <= database.commits <= 5
    assert database.write_sync(add_repo("s")) == "S"
    assert await database.write(add_repo("u"), durable=False) == "U"
    assert await database.read(repo_names) == ["r0", "r1", "r2", "r3", "r4", "s", "u"]


async def test_a_failing_job_rolls_back_alone(database: Database) -> None:
    def bad(conn: sa.Connection, batch: Batch) -> None:
        conn.execute(sa.insert(t.repositories).values(name="bad", created_at=1.0))
        raise ValueError("no")
    results = await asyncio.gather(database.write(add_repo("a")), database.write(bad),
                                   database.write(add_repo("b")), return_exceptions=True)
    assert results[0] == "A" and results[2] == "B"
    assert isinstance(results[1], ValueError)
    assert database.read_sync(repo_names) == ["a", "b"]


async def test_a_uniqueness_race_is_a_conflict(database: Database) -> None:
    await database.write(add_repo("dup"))
    with pytest.raises(Conflict) as err:
        await database.write(add_repo("dup"))
    assert err.value.detail and len(err.value.detail) <= 300
    with pytest.raises(Conflict):
        database.write_sync(add_repo("dup"))
    # Jobs sharing a batch with the loser are not affected (SQLite: savepoint per job).
    results = await asyncio.gather(database.write(add_repo("x")), database.write(add_repo("dup")),
                                   database.write(add_repo("y")), return_exceptions=True)
    assert results[0] == "X" and results[2] == "Y" and isinstance(results[1], Conflict)
    assert database.read_sync(repo_names) == ["dup", "x", "y"]


async def test_reads_run_in_a_read_only_snapshot_on_a_thread(database: Database) -> None:
    await database.write(add_repo("a"))
    threads: list[threading.Thread] = []

    def fn(conn: sa.Connection) -> list[str]:
        threads.append(threading.current_thread())
        assert conn.in_transaction()
        return repo_names(conn)
    assert await database.read(fn) == ["a"]
    assert threads[0] is not threading.current_thread()


async def test_compiled_hot_reads(database: Database) -> None:
    for name in ("a", "b", "c"):
        await database.write(add_repo(name))
    one = database.compiled(sa.select(t.repositories.c.name, t.repositories.c.created_at)
                            .where(t.repositories.c.name == sa.bindparam("name")))
    assert await database.fetch_one(one, {"name": "b"}) == ("b", 1.0)
    assert await database.fetch_one(one, {"name": "zz"}) is None
    assert database.fetch_one_sync(one, {"name": "c"}) == ("c", 1.0)
    after = database.compiled(sa.select(t.repositories.c.name)
                              .where(t.repositories.c.name > sa.bindparam("last"))
                              .order_by(t.repositories.c.name))
    assert await database.fetch_all(after, {"last": "a"}) == [("b",), ("c",)]
    assert database.fetch_all_sync(after, {"last": "c"}) == []
    # A write is seen by the next hot read (no stale snapshot on the reader connection).
    await database.write(add_repo("d"))
    assert await database.fetch_all(after, {"last": "c"}) == [("d",)]


def build_count() -> sa.ClauseElement:
    return sa.select(sa.func.count()).select_from(t.repositories)


async def test_prepared_statements_are_compiled_once(database: Database) -> None:
    assert database.prepared(build_count) is database.prepared(build_count)
    assert await database.fetch_one(database.prepared(build_count)) == (0,)


async def test_offload_runs_on_another_thread(database: Database) -> None:
    def where(x: int, *, y: int) -> tuple[threading.Thread, int]:
        return threading.current_thread(), x + y
    thread, total = await database.offload(where, 1, y=2)
    assert total == 3 and thread is not threading.current_thread()


async def test_a_database_built_from_a_url_owns_its_engine(database_url: str) -> None:
    db = Database(database_url)
    try:
        await db.write(add_repo("own"))
        assert await db.read(repo_names) == ["own"]
    finally:
        db.close()
    other = Database(database_url)
    try:
        assert other.read_sync(repo_names) == ["own"]
    finally:
        other.close()
