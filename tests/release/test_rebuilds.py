"""The rebuild loop on SQLite: a base release queues exactly the dependant rebuilds, stale
images, unchanged rebuilds refused, pre-release rebuilds once per release, notes naming the
base and package changes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import replace

import pytest
import sqlalchemy as sa

from strata.meta.build_store import BuildStore, JobFilter
from strata.meta.database import Database
from strata.meta.rebuild_store import RebuildStore
from strata.registry.service import Registry
from strata.release.engine import ReleaseEngine
from strata.release.notes import render_markdown
from strata.release.rebuild import BuildInputs, Package, packages_digest, parse_inputs
from strata.release.rebuilds import RebuildLoop, Unchanged

from .conftest import Clock
from .helpers import make_image, push, push_build

ANCHOR = dt.date(2025, 6, 10)
COMMIT = "a" * 40


@pytest.fixture
def database(db: sa.Engine, clock: Clock) -> Iterator[Database]:
    database = Database(db, clock=clock)
    yield database
    database.close()


@pytest.fixture
def loop(database: Database) -> RebuildLoop:
    return RebuildLoop(RebuildStore(database))


def inputs(base_digest: str | None, *, tag: str = "25", base: str = "f25",
           commit: str = COMMIT, packages: tuple[Package, ...] = ()) -> BuildInputs:
    return BuildInputs(f"https://git.example/{commit[:4]}", commit, base, tag, base_digest,
                       packages, packages_digest(packages))


async def base_build(engine: ReleaseEngine, registry: Registry, release: str) -> str:
    image = make_image("f25", "25", f"{release}.f25docker")
    digest = await push(registry, "f25", image)
    await engine.inventory.add_candidate("f25", digest, actor="releng")
    return digest


async def layered(engine: ReleaseEngine, registry: Registry, loop: RebuildLoop, repo: str,
                  release: str, built_on: BuildInputs, *, salt: str = "") -> str:
    digest = await push_build(registry, repo, "1", f"{release}.f25docker", salt=salt)
    await engine.inventory.add_candidate(repo, digest, actor="maint")
    await loop.record(repo, digest, built_on)
    return digest


async def world(engine: ReleaseEngine, registry: Registry, loop: RebuildLoop) -> dict[str, str]:
    """f25 (a base, released as 25-1), images a and b built on f25:25, c on f25:24 (another
    stream of the same base), d on f25:25 but without a registered source, e with no recorded
    inputs; all released in f25-2025-06-10."""
    await engine.inventory.add_namespace("f25", "f25docker", anchor=ANCHOR)
    await engine.inventory.add_image("f25", namespace="f25")
    for name in "abce":
        await engine.inventory.add_image(f"f25/{name}",
                                         source_url=f"https://git.example/{name}.git",
                                         source_branch="f25")
    await engine.inventory.add_image("f25/d")  # approved, no source (issue 14: no candidates
    # of an unregistered image)
    old = await base_build(engine, registry, "1")
    await engine.publish(namespace="f25", actor="releng")
    digests = {"base1": old}
    for name, built_on in (("a", inputs(old)), ("b", inputs(old)),
                           ("c", inputs("sha256:" + "c" * 64, tag="24")),
                           ("d", inputs(old))):
        digests[name] = await layered(engine, registry, loop, f"f25/{name}", "1", built_on)
    digests["e"] = await push_build(registry, "f25/e", "1", "1.f25docker")
    await engine.inventory.add_candidate("f25/e", digests["e"], actor="maint")
    await engine.publish(namespace="f25", actor="releng")
    return digests


async def test_a_base_release_queues_exactly_the_dependant_rebuilds(
        engine: ReleaseEngine, registry: Registry, loop: RebuildLoop,
        database: Database) -> None:
    digests = await world(engine, registry, loop)
    assert await loop.stale("f25") == []
    new = await base_build(engine, registry, "2")
    release = await engine.oob([f"f25@{new}"], advisories=["FEDORA-2025-1"],
                               reason="glibc", actor="releng")
    stale = await loop.stale("f25")
    # d is stale too (built on f25:25) but has no registered source: listed, not queued
    assert [(s.repository, s.built_on, s.now) for s in stale] == [
        ("f25/a", digests["base1"], new), ("f25/b", digests["base1"], new),
        ("f25/d", digests["base1"], new)]
    assert stale[0].built_on_nvr == "f25-25-1.f25docker"
    assert stale[0].now_nvr == "f25-25-2.f25docker"
    # queued by the release itself, in its transaction
    jobs = await BuildStore(database).jobs(JobFilter(kind="rebuild"))
    assert sorted(j.repository for j in jobs) == ["f25/a", "f25/b"]
    assert all(j.rebuild and j.state == "queued" for j in jobs)
    assert {j.source_url for j in jobs} == {"https://git.example/a.git",
                                            "https://git.example/b.git"}
    assert "base f25:25 moved in " + release.name in (jobs[0].reason or "")
    # asked again (a second worker, a retry): the queued rebuilds are not doubled
    assert sorted(await loop.after_release(release.name)) == sorted(j.id for j in jobs)
    assert len(await BuildStore(database).jobs(JobFilter(kind="rebuild"))) == 2
    assert [p.repository for p in await loop.pending("f25")] == ["f25/a", "f25/b"]
    # a release that moved no base stream queues nothing
    x = await push_build(registry, "f25/e", "1", "2.f25docker")
    other = await engine.oob([f"f25/e@{x}"], advisories=["A-1"], reason="r", actor="releng")
    assert await loop.after_release(other.name) == []


async def test_an_unchanged_rebuild_is_refused_and_a_changed_one_registered(
        engine: ReleaseEngine, registry: Registry, loop: RebuildLoop) -> None:
    digests = await world(engine, registry, loop)
    same = inputs(digests["base1"])
    with pytest.raises(Unchanged) as caught:
        await loop.check_unchanged("f25/a", same)
    assert caught.value.same_as.status == "released"
    assert caught.value.same_as.nvr == "a-1-1.f25docker"
    assert caught.value.detail()["unchanged"] is True
    # another base digest, another commit or other packages: a real rebuild
    await loop.check_unchanged("f25/a", replace(same, base_digest="sha256:" + "d" * 64))
    await loop.check_unchanged("f25/a", replace(same, source_commit="b" * 40))
    pkgs = (Package("glibc", "2.41-2", "x86_64"),)
    changed = replace(same, packages=pkgs, packages_digest=packages_digest(pkgs))
    await loop.check_unchanged("f25/a", changed)
    # a pending candidate counts as current too
    pending = await layered(engine, registry, loop, "f25/a", "2", changed, salt="p")
    assert pending
    with pytest.raises(Unchanged) as again:
        await loop.check_unchanged("f25/a", changed)
    assert again.value.same_as.status == "candidate"
    # no known commit: never judged unchanged
    await loop.check_unchanged("f25/e", replace(same, source_commit=None))


async def test_pre_release_rebuilds_are_queued_once_per_release(
        engine: ReleaseEngine, registry: Registry, loop: RebuildLoop, database: Database,
        clock: Clock) -> None:
    await world(engine, registry, loop)  # published 06-10 and 06-24 (early); next: 07-08
    assert await loop.queue_due() == {}  # no namespace has the setting
    assert await loop.set_days_before("f25", 2)
    assert not await loop.set_days_before("nope", 2)
    with pytest.raises(ValueError):
        await loop.set_days_before("f25", -1)
    assert await loop.queue_due(dt.date(2025, 7, 5)) == {}  # 3 days before
    queued = await loop.queue_due(dt.date(2025, 7, 6))
    jobs = await BuildStore(database).jobs(JobFilter(kind="rebuild"))
    # every active image with a source: a, b, c, e (d has none; the base f25 neither)
    assert sorted(j.repository for j in jobs) == ["f25/a", "f25/b", "f25/c", "f25/e"]
    assert sorted(queued["f25"]) == sorted(j.id for j in jobs)
    assert "before scheduled release f25-2025-07-08" in (jobs[0].reason or "")
    assert await loop.queue_due(dt.date(2025, 7, 7)) == {}  # once per release


async def test_notes_name_the_base_change_and_the_package_changes(
        engine: ReleaseEngine, registry: Registry, loop: RebuildLoop) -> None:
    old_pkgs = (Package("glibc", "2.41-1", "x86_64"), Package("bash", "5.2-1", "x86_64"),
                Package("gone", "1-1", "noarch"))
    new_pkgs = (Package("glibc", "2.41-2", "x86_64"), Package("bash", "5.2-1", "x86_64"),
                Package("<img src=x onerror=alert(1)>", "1*2", "noarch"))
    await engine.inventory.add_namespace("f25", "f25docker", anchor=ANCHOR)
    await engine.inventory.add_image("f25", namespace="f25")
    await engine.inventory.add_image("f25/a")
    base1 = await base_build(engine, registry, "1")
    await engine.publish(namespace="f25", actor="releng")
    await layered(engine, registry, loop, "f25/a", "1", inputs(base1, packages=old_pkgs))
    await engine.publish(namespace="f25", actor="releng")
    base2 = await base_build(engine, registry, "2")
    await engine.oob([f"f25@{base2}"], advisories=["FEDORA-1"], reason="glibc",
                     actor="releng")
    rebuilt = await layered(engine, registry, loop, "f25/a", "2",
                            inputs(base2, packages=new_pkgs))
    release = await engine.oob([f"f25/a@{rebuilt}"], advisories=["FEDORA-1"],
                               reason="rebuild", actor="releng")
    notes = release.notes
    assert notes is not None
    (image,) = notes["images"]
    rebuild = image["rebuild"]
    assert rebuild["base"] == {"repository": "f25", "tag": "25", "old_digest": base1,
                               "new_digest": base2, "old_nvr": "f25-25-1.f25docker",
                               "new_nvr": "f25-25-2.f25docker"}
    assert {(p["name"], p["old"], p["new"]) for p in rebuild["packages"]} == {
        ("glibc", "2.41-1", "2.41-2"), ("gone", "1-1", None),
        ("<img src=x onerror=alert(1)>", None, "1*2")}
    markdown = render_markdown(notes)
    assert "Base `f25:25`: f25-25-1.f25docker → f25-25-2.f25docker" in markdown
    assert "glibc 2.41-1 → 2.41-2" in markdown
    assert "<img" not in markdown and "&lt;img src=x onerror=alert\\(1\\)&gt; (new) → 1\\*2" \
        in markdown


def test_parse_inputs_checks_what_a_client_sends() -> None:
    assert parse_inputs({}) is None
    parsed = parse_inputs({"source": {"url": "https://g/x.git", "commit": COMMIT},
                           "base": {"repository": "f25", "tag": "25",
                                    "digest": "sha256:" + "1" * 64},
                           "packages": [{"name": "b", "version": "1"},
                                        {"name": "a", "version": "2", "arch": "x86_64"}]})
    assert parsed is not None
    assert [p.name for p in parsed.packages] == ["a", "b"]
    assert parsed.packages_digest == packages_digest(reversed(parsed.packages))
    for bad in ({"source": {"commit": "not a commit"}},
                {"base": {"repository": "UPPER"}},
                {"base": {"tag": "25"}},
                {"base": {"repository": "f25", "digest": "md5:x"}},
                {"packages": [{"version": "1"}]},
                {"packages": "glibc"},
                {"source": "x"}):
        with pytest.raises(ValueError):
            parse_inputs(bad)
