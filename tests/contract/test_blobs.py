"""Blobs: finish an upload (record, place, persist, link), size, touch, mount, unlink."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from strata.meta import schema as t
from strata.meta.registry_store import RegistryStore

from .conftest import Clock
from .helpers import add_blob, blob_digest, blob_row, count, link_row


async def test_finish_upload_places_persists_links_and_ends_the_session(
        meta: RegistryStore, engine: sa.Engine, clock: Clock) -> None:
    digest = blob_digest("b")
    assert await meta.advance_upload("u1", "lib/x", 0, 7)
    calls: list[object] = []
    await meta.finish_upload("u1", "lib/x", digest, 7, lambda: calls.append("place"),
                             calls.append)
    assert calls == ["place", [digest]]
    assert await meta.blob_size("lib/x", digest) == 7
    assert await meta.get_upload("u1") is None
    assert blob_row(engine, digest) == (7, clock.now)
    assert link_row(engine, "lib/x", digest) == (clock.now, clock.now)


async def test_a_failing_place_records_nothing(meta: RegistryStore, engine: sa.Engine) -> None:
    assert await meta.advance_upload("u1", "lib/x", 0, 7)

    def place() -> None:
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        await meta.finish_upload("u1", "lib/x", blob_digest("b"), 7, place, lambda d: None)
    assert blob_row(engine, blob_digest("b")) is None
    assert await meta.get_upload("u1") is not None
    assert count(engine, t.repository_blobs) == 0


async def test_blob_size_is_per_repository(meta: RegistryStore) -> None:
    digest = blob_digest("b")
    await add_blob(meta, "lib/x", digest, 123)
    assert await meta.blob_size("lib/x", digest) == 123
    assert await meta.blob_size("lib/y", digest) is None
    assert await meta.blob_size("lib/x", blob_digest("other")) is None
    # The same blob uploaded into a second repository: one row, two links.
    await add_blob(meta, "lib/y", digest, 123)
    assert await meta.blob_size("lib/y", digest) == 123
    assert await meta.list_repositories(None, None) == ["lib/x", "lib/y"]


async def test_asking_touches_the_link_at_most_once_per_interval(
        meta: RegistryStore, engine: sa.Engine, clock: Clock) -> None:
    digest = blob_digest("b")
    await add_blob(meta, "lib/x", digest)
    created = clock.now
    clock.advance(30)  # within touch_interval (60 s): no write
    assert await meta.blob_size("lib/x", digest) == 10
    assert link_row(engine, "lib/x", digest) == (created, created)
    clock.advance(40)
    assert await meta.blob_size("lib/x", digest) == 10
    assert link_row(engine, "lib/x", digest) == (created, clock.now)


async def test_mount_links_from_a_source_that_has_the_blob(meta: RegistryStore,
                                                            engine: sa.Engine,
                                                            clock: Clock) -> None:
    digest = blob_digest("b")
    await add_blob(meta, "lib/src", digest, 55)
    assert await meta.mount_blob("lib/nope", "lib/dst", digest) is None
    assert await meta.mount_blob("lib/src", "lib/dst", blob_digest("x")) is None
    assert not await meta.repository_exists("lib/dst")
    clock.advance(5)
    assert await meta.mount_blob("lib/src", "lib/dst", digest) == 55
    assert await meta.blob_size("lib/dst", digest) == 55
    assert link_row(engine, "lib/dst", digest) == (clock.now, clock.now)
    clock.advance(5)
    assert await meta.mount_blob("lib/src", "lib/dst", digest) == 55  # again: a touch
    assert link_row(engine, "lib/dst", digest) == (clock.now - 5, clock.now)
    assert count(engine, t.blobs) == 1


async def test_unlink(meta: RegistryStore, engine: sa.Engine) -> None:
    digest = blob_digest("b")
    await add_blob(meta, "lib/x", digest)
    await add_blob(meta, "lib/y", digest)
    assert await meta.unlink_blob("lib/x", digest)
    assert not await meta.unlink_blob("lib/x", digest)
    assert not await meta.unlink_blob("nope", digest)
    assert await meta.blob_size("lib/x", digest) is None
    assert await meta.blob_size("lib/y", digest) == 10
    assert blob_row(engine, digest) is not None  # the blob itself is the collector's
