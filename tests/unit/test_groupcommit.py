"""Group commit: jobs queued while the write lock is taken share one transaction."""

from __future__ import annotations

import asyncio
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from strata.meta.connection import create_engine
from strata.meta.groupcommit import Batch, GroupWriter, Job

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


async def test_non_durable_commits_restore_full_sync(engine: sa.Engine) -> None:
    """An upload offset commits without waiting for the disk; the connection goes back to the
    pool with ``synchronous=FULL`` so that the next blob or manifest commit is durable."""
    writer = GroupWriter(engine)
    assert await writer.run(insert("offset"), durable=False) == "OFFSET"

    def level(conn: sa.Connection, batch: Batch) -> int:
        return int(conn.exec_driver_sql("PRAGMA synchronous").scalar_one())

    assert await writer.run(level) == 2  # FULL
    assert names(engine) == {"offset"}
    writer.close()
