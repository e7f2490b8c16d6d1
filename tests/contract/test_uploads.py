"""Upload sessions: offsets by compare-and-set, stale sessions, delete."""

from __future__ import annotations

import asyncio

from strata.meta.records import UploadRecord
from strata.meta.registry_store import RegistryStore

from .conftest import Clock


async def test_a_session_gets_a_row_with_its_first_chunk(meta: RegistryStore,
                                                         clock: Clock) -> None:
    assert await meta.get_upload("u1") is None
    assert not await meta.advance_upload("u1", "lib/x", 5, 10)  # no row, not from 0
    assert await meta.get_upload("u1") is None
    start = clock.now
    assert await meta.advance_upload("u1", "lib/x", 0, 10)
    assert await meta.get_upload("u1") == UploadRecord("u1", "lib/x", 10, start, start)


async def test_advance_is_a_compare_and_set(meta: RegistryStore, clock: Clock) -> None:
    start = clock.now
    assert await meta.advance_upload("u1", "lib/x", 0, 10)
    clock.advance(3)
    assert not await meta.advance_upload("u1", "lib/x", 0, 5)  # stale offset
    assert not await meta.advance_upload("u1", "lib/x", 9, 20)
    assert await meta.advance_upload("u1", "lib/x", 10, 2**40)  # sizes beyond 32 bits
    assert not await meta.advance_upload("u1", "lib/x", 10, 30)
    assert await meta.get_upload("u1") == UploadRecord("u1", "lib/x", 2**40, start, clock.now)


async def test_racing_first_chunks_one_wins(meta: RegistryStore) -> None:
    results = await asyncio.gather(*(meta.advance_upload("u1", "lib/x", 0, n)
                                     for n in range(1, 9)))
    assert sorted(results) == [False] * 7 + [True]
    rec = await meta.get_upload("u1")
    assert rec is not None and rec.size == 1 + results.index(True)


async def test_racing_chunks_from_one_offset_one_wins(meta: RegistryStore) -> None:
    assert await meta.advance_upload("u1", "lib/x", 0, 10)
    results = await asyncio.gather(*(meta.advance_upload("u1", "lib/x", 10, 10 + n)
                                     for n in range(1, 9)))
    assert sorted(results) == [False] * 7 + [True]


async def test_stale_uploads(meta: RegistryStore, clock: Clock) -> None:
    t0 = clock.now
    assert await meta.advance_upload("old", "lib/x", 0, 1)
    clock.advance(100)
    assert await meta.advance_upload("new", "lib/y", 0, 1)
    clock.advance(100)
    assert await meta.stale_uploads(t0) == []
    assert await meta.stale_uploads(t0 + 50) == [UploadRecord("old", "lib/x", 1, t0, t0)]
    assert {r.id for r in await meta.stale_uploads(clock.now)} == {"old", "new"}
    assert await meta.advance_upload("old", "lib/x", 1, 2)  # active again
    assert [r.id for r in await meta.stale_uploads(t0 + 150)] == ["new"]


async def test_delete_upload(meta: RegistryStore) -> None:
    assert not await meta.delete_upload("u1")
    assert await meta.advance_upload("u1", "lib/x", 0, 1)
    assert await meta.delete_upload("u1")
    assert not await meta.delete_upload("u1")
    assert await meta.get_upload("u1") is None


async def test_open_upload_counts_the_accounts_open_sessions(meta: RegistryStore,
                                                             clock: Clock) -> None:
    now = clock.now

    def rec(upload_id: str, account: str) -> UploadRecord:
        return UploadRecord(upload_id, "lib/x", 0, now, now, account)

    assert await meta.open_upload(rec("a1", "alice"), 2, now - 600, now - 86400) == 0
    assert await meta.open_upload(rec("a2", "alice"), 2, now - 600, now - 86400) == 1
    assert await meta.open_upload(rec("a3", "alice"), 2, now - 600, now - 86400) == 2
    assert await meta.get_upload("a3") is None  # refused: no row
    assert await meta.get_upload("a1") == rec("a1", "alice")
    assert await meta.open_upload(rec("b1", "bob"), 2, now - 600, now - 86400) == 0
    # A session with bytes counts until the TTL; an empty one only while it is not idle.
    assert await meta.advance_upload("a1", "lib/x", 0, 10)
    assert await meta.open_upload(rec("a4", "alice"), 2, now + 1, now - 86400) == 1
    assert {r.id for r in await meta.stale_uploads(now - 86400, now + 1)} == {"a2", "b1", "a4"}
    stale = await meta.stale_uploads(now + 1)
    assert {(r.id, r.account) for r in stale} == {
        ("a1", "alice"), ("a2", "alice"), ("a4", "alice"), ("b1", "bob")}
