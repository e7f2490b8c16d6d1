"""The rebuild loop's SQL (``meta/rebuild_store.py``) on SQLite and PostgreSQL: inputs recorded
once, stale images and exactly the dependants of a moved stream, pre-release rebuilds queued
once per release also when two processes race, the unchanged comparison's references."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import sqlalchemy as sa

from strata.meta import rebuild_store as rs
from strata.meta.build_store import BuildStore, JobFilter
from strata.meta.database import Database
from strata.meta.schema import candidates, images, namespaces, repositories, tag_events, tags
from strata.release.rebuild import BuildInputs, Package, packages_digest

OLD, NEW, OTHER = ("sha256:" + c * 64 for c in "abc")
PKGS = (Package("glibc", "2.41-1", "x86_64"),)


def inputs(base_digest: str, tag: str = "25") -> BuildInputs:
    return BuildInputs("https://git.example/x.git", "f" * 40, "f25", tag, base_digest, PKGS,
                       packages_digest(PKGS))


async def world(database: Database) -> None:
    def go(conn: sa.Connection, _batch: Any) -> None:
        conn.execute(sa.insert(namespaces).values(name="f25", dist_tag="f25docker",
                                                  interval_days=14, anchor="2025-06-10",
                                                  created_at=1.0))
        for repo, source in (("f25", None), ("f25/a", "https://g/a.git"),
                             ("f25/b", "https://g/b.git"), ("f25/c", None)):
            conn.execute(sa.insert(images).values(
                repository=repo, namespace="f25", name=repo.rsplit("/", 1)[-1],
                status="active", maintainers="[]", source_url=source, source_branch="f25",
                created_at=1.0))
        for n, (repo, digest) in enumerate((("f25/a", "sha256:" + "1" * 64),
                                            ("f25/b", "sha256:" + "2" * 64),
                                            ("f25/c", "sha256:" + "3" * 64))):
            conn.execute(sa.insert(candidates).values(
                repository=repo, digest=digest, name=repo[4:], version="1",
                release=f"{n}.f25docker", status="released", advisories="[]",
                created_at=1.0, created_by="t"))
        rid = conn.execute(sa.insert(repositories).values(name="f25", created_at=1.0)
                           .returning(repositories.c.id)).scalar_one()
        for tag in ("25", "24"):
            conn.execute(sa.insert(tags).values(repository_id=rid, name=tag, digest=OLD,
                                                updated_at=1.0))
    await database.write(go)
    for repo, digest, tag in (("f25/a", "1", "25"), ("f25/b", "2", "24"), ("f25/c", "3", "25")):
        await database.write(lambda conn, _b, repo=repo, digest=digest, tag=tag: rs.record_inputs(
            conn, repo, "sha256:" + digest * 64, inputs(OLD, tag), 2.0))


async def move(database: Database, tag: str, release: str) -> None:
    def go(conn: sa.Connection, _batch: Any) -> None:
        rid = conn.execute(sa.select(repositories.c.id).where(
            repositories.c.name == "f25")).scalar_one()
        conn.execute(sa.update(tags).where(tags.c.repository_id == rid,
                                           tags.c.name == tag).values(digest=NEW))
        conn.execute(sa.insert(tag_events).values(
            repository="f25", tag=tag, old_digest=OLD, new_digest=NEW, actor="releng",
            release_name=release, at=3.0))
    await database.write(go)


async def test_dependants_stale_and_references(database: Database) -> None:
    await world(database)
    store = rs.RebuildStore(database)
    # recorded once: a repeated registration keeps the first record
    await database.write(lambda conn, _b: rs.record_inputs(
        conn, "f25/a", "sha256:" + "1" * 64, inputs(OTHER), 9.0))
    assert (await store.inputs_of("f25/a", "sha256:" + "1" * 64)) == inputs(OLD)
    assert await store.stale() == []
    await move(database, "25", "f25-security-1")
    stale = await store.stale("f25")
    assert [(s.repository, s.built_on, s.now) for s in stale] == [
        ("f25/a", OLD, NEW), ("f25/c", OLD, NEW)]
    ids = await database.write(lambda conn, _b: rs.queue_dependants(conn, "f25-security-1", 4.0))
    jobs = await BuildStore(database).jobs(JobFilter(kind="rebuild"))
    assert sorted(j.id for j in jobs) == sorted(ids)
    assert [j.repository for j in jobs] == ["f25/a"]  # c has no source, b another stream
    assert [p.repository for p in await store.pending("f25")] == ["f25/a"]
    [ref] = await store.current_references("f25/a")
    assert (ref.status, ref.nvr, ref.inputs) == ("released", "a-1-0.f25docker", inputs(OLD))


async def test_pre_release_rebuilds_race_once(database: Database) -> None:
    await world(database)
    store = rs.RebuildStore(database)
    assert await store.set_days_before("f25", 2)
    assert await store.set_days_before("f25", 3)  # set again: one row
    assert await store.days_before() == {"f25": 3}
    [sched] = await store.schedules()
    assert (sched.namespace, sched.anchor, sched.days_before) == ("f25", dt.date(2025, 6, 10), 3)
    day = dt.date(2025, 6, 10)
    other = Database(database.sa_engine, clock=database.clock)
    try:
        results = await asyncio.gather(
            store.queue_prerelease("f25", day, "f25-2025-06-10"),
            rs.RebuildStore(other).queue_prerelease("f25", day, "f25-2025-06-10"))
    finally:
        other.close()
    assert sum(r is None for r in results) == 1  # one of them queued, the other saw it
    queued = next(r for r in results if r is not None)
    assert len(queued) == 2  # a and b have a source
    assert await store.queue_prerelease("f25", day, "f25-2025-06-10") is None
    assert await store.queue_prerelease("f25", day + dt.timedelta(days=14),
                                        "f25-2025-06-24") is not None
