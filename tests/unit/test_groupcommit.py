"""Group commit: jobs queued while the write lock is taken share one transaction."""

from __future__ import annotations

import asyncio
import fcntl
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from strata.meta import connection, groupcommit
from strata.meta.connection import create_engine
from strata.meta.groupcommit import Batch, GroupWriter, Job
from support.syncs import record_syncs

items = sa.Table("items", sa.MetaData(), sa.Column("name", sa.String, primary_key=True))


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    engine = create_engine(f"sqlite:///{tmp_path / 'g.db'}")
    with engine.begin() as conn:
        items.create(conn)
    yield engine
    engine.dispose()


def names(engine: sa.Engine) -> set[str]:
    with engine.connect() as conn:
        return {r[0] for r in conn.execute(sa.select(items.c.name))}


def insert(name: str, hook: list[list[str]] | None = None) -> Job[str]:
    def job(conn: sa.Connection, batch: Batch) -> str:
        conn.execute(sa.insert(items).values(name=name))
        if hook is not None:
            batch.before_commit(hook.append, name)
        if name.startswith("bad"):
            raise ValueError(name)
        return name.upper()
    return job


async def held_lock_then_release(engine: sa.Engine, writer: GroupWriter,
                                 jobs: list[Job[str]]) -> list[Any]:
    """Submit ``jobs`` while another process-like holder has the write lock, then free it."""
    database = engine.url.database
    assert database is not None
    fd = os.open(f"{database}.writelock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    first = asyncio.ensure_future(writer.run(jobs[0]))
    await asyncio.sleep(0.1)  # the writer thread takes it and waits for the lock
    rest = [asyncio.ensure_future(writer.run(job)) for job in jobs[1:]]
    await asyncio.sleep(0.1)  # these queue up behind it
    os.close(fd)
    tasks = [first, *rest]
    return list(await asyncio.gather(*tasks, return_exceptions=True))


async def test_jobs_waiting_on_the_lock_share_a_commit(engine: sa.Engine) -> None:
    writer = GroupWriter(engine)
    results = await held_lock_then_release(engine, writer, [insert(f"n{i}") for i in range(20)])
    assert results == [f"N{i}" for i in range(20)]
    assert names(engine) == {f"n{i}" for i in range(20)}
    assert writer.jobs == 20
    assert writer.commits == 2  # the first job alone (it was waiting), then the other 19
    writer.close()


async def test_a_failing_job_rolls_back_alone(engine: sa.Engine) -> None:
    writer = GroupWriter(engine)
    jobs = [insert("a"), insert("bad1"), insert("b"), insert("a"), insert("c")]
    results = await held_lock_then_release(engine, writer, [insert("first"), *jobs])
    assert results[:4] == ["FIRST", "A", results[2], "B"]
    assert isinstance(results[2], ValueError)
    assert isinstance(results[4], sa.exc.IntegrityError)  # "a" again: duplicate key
    assert results[5] == "C"
    assert names(engine) == {"first", "a", "b", "c"}
    writer.close()


async def test_hooks_run_once_per_commit_with_every_item(engine: sa.Engine) -> None:
    writer = GroupWriter(engine)
    calls: list[list[str]] = []
    jobs = [insert("x", calls), insert("bad", calls), insert("y", calls), insert("z", calls)]
    await held_lock_then_release(engine, writer, [insert("first"), *jobs])
    assert calls == [["x", "y", "z"]]  # the failed job's hook item is dropped with it
    writer.close()


async def test_a_failing_hook_fails_every_job_and_commits_nothing(engine: sa.Engine) -> None:
    writer = GroupWriter(engine)

    def broken(items: list[str]) -> None:
        raise OSError("fsync failed")

    def job(name: str) -> Job[str]:
        def go(conn: sa.Connection, batch: Batch) -> str:
            conn.execute(sa.insert(items).values(name=name))
            batch.before_commit(broken, name)
            return name
        return go

    results = await held_lock_then_release(engine, writer,
                                           [insert("first"), job("p"), job("q")])
    assert results[0] == "FIRST"
    assert all(isinstance(r, OSError) for r in results[1:])
    assert names(engine) == {"first"}
    # The writer goes on after a failed commit.
    assert await writer.run(insert("later")) == "LATER"
    writer.close()


def test_run_sync_commits_one_job(engine: sa.Engine) -> None:
    writer = GroupWriter(engine)
    assert writer.run_sync(insert("solo")) == "SOLO"
    with pytest.raises(ValueError):
        writer.run_sync(insert("bad"))
    assert names(engine) == {"solo"}


async def test_connections_go_back_to_the_pool_with_full_sync(engine: sa.Engine) -> None:
    """Commits run with ``synchronous=NORMAL`` (the WAL is synced after the lock is released);
    the connection goes back to the pool with ``synchronous=FULL`` for whatever else uses it."""
    writer = GroupWriter(engine)
    assert await writer.run(insert("offset"), durable=False) == "OFFSET"
    assert await writer.run(insert("blob")) == "BLOB"

    def level(conn: sa.Connection, batch: Batch) -> int:
        return int(conn.exec_driver_sql("PRAGMA synchronous").scalar_one())

    assert await writer.run(level) == 1  # NORMAL while committing
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar_one() == 2  # FULL
    assert names(engine) == {"offset", "blob"}
    writer.close()


class GatedSync:
    """Stands in for ``sync_wal``: records each call (was the write lock free, what was
    committed), then waits until the test opens the gate."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.gate = threading.Event()
        self.calls: list[tuple[bool, set[str]]] = []

    def __call__(self, engine: sa.Engine) -> None:
        database = engine.url.database
        fd = os.open(f"{database}.writelock", os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises if the lock is held
            free = True
        except BlockingIOError:
            free = False
        finally:
            os.close(fd)
        self.calls.append((free, names(engine)))
        assert self.gate.wait(10)


async def until(predicate: Callable[[], bool]) -> None:
    for _ in range(500):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")


async def test_a_durable_job_is_told_only_once_its_wal_is_synced(
        engine: sa.Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fsync of the WAL is after the commit and outside the write lock (the next writer
    need not wait for it), but before anyone is told the job is stored; commits made while a
    sync runs share the next one, and non-durable jobs do not wait for any."""
    sync = GatedSync(engine)
    monkeypatch.setattr(groupcommit, "sync_wal", sync)
    writer = GroupWriter(engine)
    first = asyncio.ensure_future(writer.run(insert("a")))
    await until(lambda: len(sync.calls) == 1)
    assert sync.calls[0] == (True, {"a"})  # committed, lock released, then the sync
    second = asyncio.ensure_future(writer.run(insert("b")))
    await until(lambda: "b" in names(engine))  # the lock is not held by the waiting sync
    third = asyncio.ensure_future(writer.run(insert("c")))
    await until(lambda: "c" in names(engine))
    relaxed = await writer.run(insert("offset"), durable=False)  # waits for no sync
    assert relaxed == "OFFSET"
    await asyncio.sleep(0.05)
    assert not (first.done() or second.done() or third.done())
    sync.gate.set()
    assert await asyncio.gather(first, second, third) == ["A", "B", "C"]
    assert len(sync.calls) == 2  # b and c shared the second sync
    writer.close()


async def test_a_failed_wal_sync_tells_no_job_it_is_stored(
        engine: sa.Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = 0

    def broken(engine: sa.Engine) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError(5, "Input/output error")

    monkeypatch.setattr(groupcommit, "sync_wal", broken)
    writer = GroupWriter(engine)
    with pytest.raises(OSError):
        await writer.run(insert("x"))
    assert await writer.run(insert("y")) == "Y"  # the writer goes on
    writer.close()


def test_run_sync_and_locked_begin_sync_before_returning(
        engine: sa.Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[set[str]] = []
    monkeypatch.setattr(groupcommit, "sync_wal", lambda e: synced.append(names(e)))
    monkeypatch.setattr(connection, "sync_wal", lambda e: synced.append(names(e)))
    writer = GroupWriter(engine)
    assert writer.run_sync(insert("solo")) == "SOLO"
    assert synced == [{"solo"}]
    with connection.locked_begin(engine, durable=False) as conn:
        conn.execute(sa.insert(items).values(name="relaxed"))
    assert synced == [{"solo"}]  # no sync for a non-durable transaction
    with connection.locked_begin(engine) as conn:
        conn.execute(sa.insert(items).values(name="durable"))
    assert synced == [{"solo"}, {"solo", "relaxed", "durable"}]


def test_sync_wal_syncs_the_wal_or_else_the_database(
        engine: sa.Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    synced = record_syncs(monkeypatch, connection, "fdatasync")
    database = str(engine.url.database)
    with engine.connect() as conn:  # a connection open: the WAL file is there
        conn.exec_driver_sql("SELECT 1")
        connection.sync_wal(engine)
        assert synced == [os.path.realpath(f"{database}-wal")]
    engine.dispose()  # the last connection closed: SQLite checkpoints and removes the WAL
    assert not os.path.exists(f"{database}-wal")
    connection.sync_wal(engine)
    assert synced[1:] == [os.path.realpath(database)]


async def test_prepare_runs_on_a_thread_before_its_job(engine: sa.Engine) -> None:
    """A blob's fdatasync is the job's ``prepare``: done on a thread that then queues the
    job (the event loop is not woken in between); a failing one fails its job alone."""
    loop_thread = threading.get_ident()
    seen: list[tuple[str, int]] = []

    def prepare(name: str) -> Callable[[], None]:
        def go() -> None:
            seen.append((f"prepare {name}", threading.get_ident()))
            if name == "bad":
                raise OSError(5, "fdatasync failed")
        return go

    def job(name: str) -> Job[str]:
        def go(conn: sa.Connection, batch: Batch) -> str:
            seen.append((f"job {name}", threading.get_ident()))
            conn.execute(sa.insert(items).values(name=name))
            return name
        return go

    writer = GroupWriter(engine)
    results = await asyncio.gather(
        writer.run(job("a"), prepare=prepare("a")), writer.run(job("bad"), prepare=prepare("bad")),
        writer.run(job("b")), return_exceptions=True)
    assert results[0] == "a" and results[2] == "b"
    assert isinstance(results[1], OSError)
    assert names(engine) == {"a", "b"}
    order = [what for what, _ in seen]
    assert order.index("prepare a") < order.index("job a")
    assert "job bad" not in order
    assert all(thread != loop_thread for _, thread in seen)
    writer.close()


def test_prepare_without_a_writer_thread(tmp_path: Path) -> None:
    """PostgreSQL's path (no group writer thread): prepare, then the job's own transaction,
    on one thread. Here forced on SQLite."""
    engine = create_engine(f"sqlite:///{tmp_path / 'p.db'}")
    with engine.begin() as conn:
        items.create(conn)
    writer = GroupWriter(engine)
    writer._grouped = False
    calls: list[str] = []

    async def go() -> None:
        assert await writer.run(insert("x"), prepare=lambda: calls.append("prepared")) == "X"

        def failing() -> None:
            raise OSError(5, "fdatasync failed")

        with pytest.raises(OSError):
            await writer.run(insert("y"), prepare=failing)

    asyncio.run(go())
    assert calls == ["prepared"]
    assert names(engine) == {"x"}
    engine.dispose()
