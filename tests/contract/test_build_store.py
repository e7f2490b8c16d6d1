"""The build queue (``meta/build_store.py``) on SQLite and PostgreSQL: enqueue, claim (one
job to one worker, also when claims race), heartbeat, log appended while a job runs, finish
with its result, interrupted jobs queued again until their attempts are used up, the
listing filters and the images built on a base."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from strata.meta.build_store import BuildResult, BuildStore, JobFilter
from strata.meta.database import Batch, Database
from support.clock import SettableClock as Clock


@pytest.fixture
def builds(database: Database) -> BuildStore:
    return BuildStore(database, max_attempts=2)


async def test_enqueue_claim_log_finish(builds: BuildStore, clock: Clock) -> None:
    clock.now = 1000.0
    first = await builds.enqueue("f25/cockpit", requested_by="alice", reason="by hand",
                                 source_url="https://git.example/c.git", source_branch="f25")
    second = await builds.enqueue("f25/toolchain", requested_by="bob")
    assert second > first
    job = await builds.job(first)
    assert job is not None and job.state == "queued" and job.attempts == 0
    assert (job.kind, job.rebuild, job.requested_by, job.created_at) == (
        "build", False, "alice", 1000.0)
    assert job.source_url == "https://git.example/c.git" and job.source_branch == "f25"

    clock.now = 1010.0
    claimed = await builds.claim("w1")
    assert claimed is not None and claimed.id == first  # oldest first
    assert (claimed.state, claimed.attempts, claimed.worker, claimed.started_at) == (
        "running", 1, "w1", 1010.0)
    await builds.append_log(first, "STEP 1\n")
    await builds.append_log(first, "STEP 2\n")
    assert await builds.log(first) == ("STEP 1\nSTEP 2\n", "running")
    assert await builds.log(first, 7) == ("STEP 2\n", "running")
    await builds.set_source(first, "https://git.example/c.git", "f25", "a" * 40)
    assert await builds.heartbeat(first, "w1") is True
    assert await builds.heartbeat(first, "w2") is False

    clock.now = 1020.0
    result = BuildResult(source_commit="a" * 40, base_repository="f25/base", base_tag="25",
                         base_digest="sha256:" + "b" * 64, packages_digest="sha256:" + "c" * 64,
                         result_digest="sha256:" + "d" * 64, result_nvr="cockpit-130-1.f25")
    assert await builds.finish(first, "succeeded", result=result, worker_id="w1") is True
    assert await builds.finish(first, "failed", error="late") is False  # already ended
    done = await builds.job(first)
    assert done is not None and done.state == "succeeded" and done.finished_at == 1020.0
    assert done.result_nvr == "cockpit-130-1.f25" and done.base_tag == "25"
    assert done.source_commit == "a" * 40 and done.error is None
    assert done.log_size == len("STEP 1\nSTEP 2\n")
    assert [j.id for j in await builds.jobs()] == [second, first]
    assert [j.id for j in await builds.jobs(JobFilter(state="queued"))] == [second]
    assert [j.id for j in await builds.jobs(JobFilter(repository="f25/cockpit"))] == [first]
    assert [j.id for j in await builds.jobs(JobFilter(namespace="f25"))] == [second, first]
    assert await builds.jobs(JobFilter(namespace="f2")) == []
    assert await builds.job(9999) is None and await builds.log(9999) is None
    assert await builds.counts() == {"queued": 1, "succeeded": 1}
    with pytest.raises(ValueError):
        await builds.finish(second, "running")


async def test_a_queued_rebuild_is_asked_for_once(builds: BuildStore) -> None:
    one = await builds.enqueue("f25/a", kind="rebuild", rebuild=True, requested_by="releng",
                               reason="base f25/base:25 moved")
    again = await builds.enqueue("f25/a", kind="rebuild", rebuild=True, requested_by="releng")
    other = await builds.enqueue("f25/b", kind="rebuild", rebuild=True, requested_by="releng")
    plain = await builds.enqueue("f25/a", requested_by="alice")
    assert one == again and len({one, other, plain}) == 3
    job = await builds.job(one)
    assert job is not None and job.kind == "rebuild" and job.rebuild is True
    await builds.claim("w")  # the rebuild runs: a new request is a new job
    assert await builds.enqueue("f25/a", kind="rebuild", rebuild=True,
                                requested_by="releng") not in (one, other, plain)
    with pytest.raises(ValueError):
        await builds.enqueue("f25/a", kind="bogus", requested_by="x")


async def test_racing_claims_take_each_job_once(builds: BuildStore) -> None:
    ids = [await builds.enqueue(f"f25/i{n}", requested_by="x") for n in range(6)]
    got = await asyncio.gather(*(asyncio.to_thread(builds.claim_sync, f"w{n}")
                                 for n in range(8)))
    taken = [j.id for j in got if j is not None]
    assert sorted(taken) == ids  # every job once, two workers found nothing
    assert await builds.claim("late") is None


async def test_two_jobs_of_one_repository_never_run_at_once(builds: BuildStore) -> None:
    first = await builds.enqueue("f25/a", requested_by="x")
    second = await builds.enqueue("f25/a", requested_by="y")
    other = await builds.enqueue("f25/b", requested_by="x")
    got = await builds.claim("w1")
    assert got is not None and got.id == first
    got = await builds.claim("w2")  # f25/a runs already: the next repository's job
    assert got is not None and got.id == other
    assert await builds.claim("w3") is None
    assert await builds.finish(first, "succeeded", worker_id="w1") is True
    got = await builds.claim("w3")
    assert got is not None and got.id == second


async def test_interrupted_jobs_are_queued_again_until_attempts_run_out(
        builds: BuildStore, clock: Clock) -> None:
    clock.now = 100.0
    job_id = await builds.enqueue("f25/a", requested_by="x")
    first = await builds.claim("w1")
    assert first is not None and first.attempts == 1
    await builds.append_log(job_id, "half way\n")
    assert await builds.requeue_interrupted() == [job_id]
    job = await builds.job(job_id)
    assert job is not None and job.state == "queued" and job.worker is None
    text = await builds.log(job_id)
    assert text is not None and "half way" in text[0] and "queued again" in text[0]
    # The old runner cannot end what is no longer its job.
    assert await builds.finish(job_id, "succeeded", worker_id="w1") is False
    second = await builds.claim("w2")
    assert second is not None and second.attempts == 2
    assert await builds.requeue_interrupted() == []  # attempts used up (max 2)
    failed = await builds.job(job_id)
    assert failed is not None and failed.state == "failed"
    assert failed.error is not None and "interrupted 2 times" in failed.error


async def test_a_lease_requeues_only_stale_workers(builds: BuildStore, clock: Clock) -> None:
    clock.now = 100.0
    stale = await builds.enqueue("f25/a", requested_by="x")
    live = await builds.enqueue("f25/b", requested_by="x")
    await builds.claim("dead")
    await builds.claim("alive")
    clock.now = 200.0
    assert await builds.heartbeat(live, "alive")
    assert await builds.requeue_interrupted(stale_before=150.0) == [stale]
    job = await builds.job(live)
    assert job is not None and job.state == "running" and job.worker == "alive"


async def test_built_on_finds_the_newest_build_of_each_dependant(builds: BuildStore) -> None:
    def result(base: str, tag: str, n: int) -> BuildResult:
        return BuildResult(base_repository=base, base_tag=tag,
                           result_digest=f"sha256:{n:064x}", result_nvr=f"x-1-{n}")

    async def built(repo: str, res: BuildResult, state: str = "succeeded") -> int:
        job_id = await builds.enqueue(repo, requested_by="x")
        claimed = await builds.claim("w")
        assert claimed is not None and claimed.id == job_id
        await builds.finish(job_id, state, result=res)
        return job_id

    await built("f25/a", result("f25/base", "24", 1))
    a2 = await built("f25/a", result("f25/base", "25", 2))
    b1 = await built("f25/b", result("f25/base", "25", 3))
    await built("f25/b", result("f25/base", "26", 4), state="failed")  # not a build of b
    await built("f25/c", result("f25/other", "25", 5))
    assert [j.id for j in await builds.built_on("f25/base", "25")] == [a2, b1]
    assert [j.id for j in await builds.built_on("f25/base")] == [a2, b1]
    assert await builds.built_on("f25/base", "24") == []


async def test_a_runner_requeues_only_its_own_jobs(builds: BuildStore) -> None:
    mine = await builds.enqueue("f25/a", requested_by="x")
    theirs = await builds.enqueue("f25/b", requested_by="x")
    await builds.claim("serve@h:/data")
    await builds.claim("worker@other:1")
    assert await builds.requeue_interrupted(worker="serve@h:/data") == [mine]
    job = await builds.job(theirs)
    assert job is not None and job.state == "running"


async def test_image_source(builds: BuildStore, database: Database) -> None:
    from strata.meta import schema as t

    def add(conn: sa.Connection, batch: Batch) -> None:
        conn.execute(sa.insert(t.namespaces).values(name="f25", dist_tag="f25docker",
                                                    anchor="2026-01-01", created_at=1.0))
        conn.execute(sa.insert(t.images).values(
            repository="f25/a", namespace="f25", name="a", status="active", maintainers="[]",
            source_url="https://git.example/a.git", source_branch="f25", created_at=1.0))
    await database.write(add)
    assert await builds.image_source("f25/a") == ("https://git.example/a.git", "f25")
    assert await builds.image_source("f25/none") is None


async def test_any_queued_says_whether_a_claim_would_find_work(builds: BuildStore) -> None:
    assert await builds.any_queued() is False
    job = await builds.enqueue("f25/cockpit", requested_by="alice")
    assert await builds.any_queued() is True
    claimed = await builds.claim("w1")
    assert claimed is not None and claimed.id == job
    assert await builds.any_queued() is False  # running is not waiting
