"""PostgreSQL restarts under traffic: requests fail only while it is down — with 503
UNAVAILABLE and ``Retry-After``, never a 500 — and strata recovers without being restarted
(the pool checks a connection before use, so the connections the restart cut are replaced).

A cluster of the test's own (the session's is shared), one node on it with files for blobs,
and a client pushing and pulling small blobs in a loop while the test stops PostgreSQL for two
seconds and starts it again."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import pytest

from support.blobpush import Answer, digest_of, pull, push
from support.postgres import PostgresCluster, PostgresError
from support.server import StrataServer

pytestmark = pytest.mark.server
REPO = "faults/pg"


@pytest.fixture
def own_postgres() -> Iterator[PostgresCluster]:
    try:
        cluster = PostgresCluster().start()
    except PostgresError as exc:
        pytest.fail(f"PostgreSQL could not start: {exc}", pytrace=False)
    try:
        yield cluster
    finally:
        cluster.stop()


async def until(done: Callable[[], bool], task: asyncio.Task[None], what: str,
                within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not done():
        assert time.monotonic() < deadline, what
        assert not task.done(), task
        await asyncio.sleep(0.05)


async def test_postgresql_restarts_under_traffic(own_postgres: PostgresCluster,
                                                 tmp_path: Path) -> None:
    url = own_postgres.create_database("restart")
    node = StrataServer(tmp_path / "node", "--no-auth", "--workers", "1", "--gc-interval", "0",
                        "--database-url", url).start()
    phase = "before"
    seen: dict[str, list[Answer]] = {"before": [], "down": [], "back": [], "after": []}
    stop = asyncio.Event()

    async def traffic(http: aiohttp.ClientSession) -> None:
        while not stop.is_set():
            data = os.urandom(2000)
            now = phase
            got = await push(http, node.url, REPO, data)
            seen[now].append(got)
            if got.status == 201:
                seen[now].append(await pull(http, node.url, REPO, digest_of(data)))
            await asyncio.sleep(0.02)

    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            task = asyncio.create_task(traffic(http))
            await until(lambda: len(seen["before"]) >= 6, task, "no traffic before the restart")
            phase = "down"
            await asyncio.to_thread(own_postgres.halt)
            await asyncio.sleep(2.0)
            await asyncio.to_thread(own_postgres.resume)
            phase = "back"
            await until(lambda: any(a.status == 201 for a in seen["back"]), task,
                        "no push succeeded after the restart")
            phase = "after"
            await until(lambda: len(seen["after"]) >= 10, task, "no traffic after the restart")
            stop.set()
            await task
    finally:
        node.stop()

    assert seen["before"] and all(a.status in (200, 201) for a in seen["before"])
    failed = [a for a in seen["down"] + seen["back"] if a.status not in (200, 201)]
    assert failed, ("no request failed while PostgreSQL was down",
                    {k: [a.status for a in v] for k, v in seen.items()})
    for a in failed:
        assert a.status == 503, (a.status, a.body[:300])
        assert a.code == "UNAVAILABLE" and int(a.headers["Retry-After"]) > 0
    assert all(a.status in (200, 201) for a in seen["after"]), \
        [(a.status, a.body[:200]) for a in seen["after"] if a.status not in (200, 201)]
