"""The release engine on SQLite: candidates, scheduled and out-of-band releases, streams,
end-of-life, rollback, history, all-or-nothing publishing."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

import pytest
import sqlalchemy as sa

from strata.errors import Code, RegistryError
from strata.meta import schema as rt
from strata.registry.service import Registry
from strata.release.engine import ReleaseEngine
from strata.release.errors import ReleaseError
from strata.release.model import BuildStatus, ReleaseKind, ReleaseStatus
from support.release import release_engine

from .conftest import Clock
from .helpers import make_image, push, push_build, tag_map

REPO = "f25/x"
ANCHOR = dt.date(2025, 6, 10)


async def tags(registry: Registry, repo: str = REPO) -> dict[str, str]:
    return await tag_map(registry, repo)


async def setup_ns(engine: ReleaseEngine, *images: str) -> None:
    """Namespace f25 with its approved images (``REPO`` unless named): candidates are
    registered only for active images (issue 14)."""
    await engine.inventory.add_namespace("f25", "f25docker", anchor=ANCHOR)
    for repo in images or (REPO,):
        await engine.inventory.add_image(repo, actor="releng", reason="test fixture")


async def candidate(engine: ReleaseEngine, registry: Registry, version: str, release: str,
                    repo: str = REPO, **kw: Any) -> str:
    digest = await push_build(registry, repo, version, f"{release}.f25docker")
    await engine.inventory.add_candidate(repo, digest, actor="maint", **kw)
    return digest


async def test_candidate_add_reads_labels_and_writes_no_tag(
        engine: ReleaseEngine, registry: Registry) -> None:
    await setup_ns(engine)
    digest = await push_build(registry, REPO, "130", "1.f25docker")
    build = await engine.inventory.add_candidate(REPO, digest, actor="maint")
    assert str(build.nvr) == "x-130-1.f25docker"
    assert build.status is BuildStatus.CANDIDATE
    assert await tags(registry) == {}
    again = await engine.inventory.add_candidate(REPO, digest, actor="other")
    assert again == build
    images = await engine.inventory.images("f25")
    assert [i.repository for i in images] == [REPO]


@pytest.mark.parametrize(("labels", "message"), [
    (("x", "130", None), "missing label"),
    (("y", "130", "1.f25docker"), "does not match the repository"),
    (("x", "130", "1.fc25"), "dist tag"),
    (("x", "1~rc", "1.f25docker"), "not allowed in a tag"),
])
async def test_candidate_add_refuses_bad_labels(
        engine: ReleaseEngine, registry: Registry, labels: tuple[str, str, str | None],
        message: str) -> None:
    await setup_ns(engine)
    digest = await push(registry, REPO, make_image(*labels))
    with pytest.raises(ReleaseError) as err:
        await engine.inventory.add_candidate(REPO, digest, actor="maint")
    assert err.value.code is Code.INVALID
    assert message in err.value.message


async def test_candidate_add_name_may_be_the_repository(
        engine: ReleaseEngine, registry: Registry) -> None:
    await setup_ns(engine)
    digest = await push(registry, REPO, make_image(REPO, "130", "1.f25docker"))
    build = await engine.inventory.add_candidate(REPO, digest, actor="maint")
    assert str(build.nvr) == "x-130-1.f25docker"


async def test_candidate_add_conflicts_and_unknowns(engine: ReleaseEngine,
                                                    registry: Registry) -> None:
    digest = await push_build(registry, REPO, "130", "1.f25docker")
    with pytest.raises(ReleaseError) as err:
        await engine.inventory.add_candidate(REPO, digest, actor="maint")
    assert err.value.code is Code.NOT_FOUND  # no namespace yet
    await setup_ns(engine)
    await engine.inventory.add_candidate(REPO, digest, actor="maint")
    other = await push_build(registry, REPO, "130", "1.f25docker", salt="rebuilt")
    with pytest.raises(ReleaseError) as err:
        await engine.inventory.add_candidate(REPO, other, actor="maint")
    assert err.value.code is Code.CONFLICT
    with pytest.raises(ReleaseError) as err:
        await engine.inventory.add_candidate(REPO, "sha256:" + "0" * 64, actor="maint")
    assert err.value.code is Code.MANIFEST_UNKNOWN


async def test_plan_shows_dates_and_moves(engine: ReleaseEngine, registry: Registry) -> None:
    await setup_ns(engine)
    d129 = await candidate(engine, registry, "129", "1")
    d130 = await candidate(engine, registry, "130", "1")
    [plan] = [p.to_json() for p in await engine.plan()]
    assert [n["date"] for n in plan["next"]] == ["2025-06-10", "2025-06-24", "2025-07-08"]
    assert plan["release"] == "f25-2025-06-10"
    [image] = plan["images"]
    moves = {m["tag"]: (m["old_digest"], m["new_digest"]) for m in image["moves"]}
    assert moves == {"129-1.f25docker": (None, d129), "130-1.f25docker": (None, d130),
                     "129": (None, d129), "130": (None, d130), "latest": (None, d130)}
    assert await tags(registry) == {}


async def test_publish_scheduled_release(engine: ReleaseEngine, registry: Registry,
                                         db: sa.Engine) -> None:
    await setup_ns(engine)
    d129 = await candidate(engine, registry, "129", "1")
    d130 = await candidate(engine, registry, "130", "1")
    release = await engine.publish(actor="releng")
    assert (release.name, release.kind, release.status) == (
        "f25-2025-06-10", ReleaseKind.SCHEDULED, ReleaseStatus.PUBLISHED)
    assert await tags(registry) == {"129-1.f25docker": d129, "130-1.f25docker": d130,
                                    "129": d129, "130": d130, "latest": d130}
    assert await engine.inventory.candidates(namespace="f25") == []
    shown = (await engine.release(release.name)).to_json()
    assert {b["nvr"] for b in shown["builds"]} == {"x-129-1.f25docker", "x-130-1.f25docker"}
    notes = shown["notes"]
    [image] = notes["images"]
    assert image["new_nvr"] == "x-130-1.f25docker" and image["old_nvr"] is None
    assert "podman pull registry.example/f25/x:latest" in image["pull"]
    assert "# Release f25-2025-06-10" in shown["notes_markdown"]
    with db.connect() as conn:
        events = conn.execute(sa.select(rt.tag_events.c.tag, rt.tag_events.c.actor,
                                        rt.tag_events.c.release_name)).all()
    assert sorted(events) == sorted((t, "releng", release.name) for t in (
        "129-1.f25docker", "130-1.f25docker", "129", "130", "latest"))
    with pytest.raises(ReleaseError) as err:
        await engine.publish(release.name, actor="releng")
    assert err.value.code is Code.CONFLICT
    [plan] = [p.to_json() for p in await engine.plan()]
    assert plan["release"] == "f25-2025-06-24"


async def test_oob_respin_of_older_version_moves_its_stream_not_latest(
        engine: ReleaseEngine, registry: Registry) -> None:
    await setup_ns(engine)
    await candidate(engine, registry, "129", "1")
    d130 = await candidate(engine, registry, "130", "1")
    await engine.publish(actor="releng")
    d129_2 = await push_build(registry, REPO, "129", "2.f25docker")
    release = await engine.oob([f"{REPO}@{d129_2}"], advisories=["FEDORA-2025-1"],
                               reason="CVE-2025-0001", actor="releng")
    assert release.kind is ReleaseKind.OOB
    assert release.name == "f25-security-2025-06-02-1"
    current = await tags(registry)
    assert current["129"] == d129_2 and current["129-2.f25docker"] == d129_2
    assert current["latest"] == d130
    notes = (await engine.release(release.name)).to_json()["notes"]
    [image] = notes["images"]
    assert image["advisories"] == ["FEDORA-2025-1"]
    assert image["old_nvr"] == "x-129-1.f25docker" and image["new_nvr"] == "x-129-2.f25docker"
    assert {s["tag"] for s in image["skipped"]} == {"latest"}
    with pytest.raises(ReleaseError) as err:
        await engine.oob([f"{REPO}@{d129_2}"], advisories=["A"], reason="again", actor="r")
    assert err.value.code is Code.CONFLICT


async def test_oob_needs_advisory_and_reason(engine: ReleaseEngine, registry: Registry) -> None:
    await setup_ns(engine)
    digest = await push_build(registry, REPO, "130", "1.f25docker")
    for advisories, reason in (([], "why"), (["A-1"], " ")):
        with pytest.raises(ReleaseError) as err:
            await engine.oob([f"{REPO}@{digest}"], advisories=advisories, reason=reason,
                             actor="r")
        assert err.value.code is Code.INVALID


async def test_eol_freezes_stream_and_keeps_latest(engine: ReleaseEngine,
                                                   registry: Registry) -> None:
    await setup_ns(engine)
    await candidate(engine, registry, "129", "1")
    d130 = await candidate(engine, registry, "130", "1")
    await engine.publish(actor="releng")
    stream = await engine.eol(f"{REPO}:130", actor="maint")
    assert stream.eol
    d130_2 = await candidate(engine, registry, "130", "2")
    await engine.publish(actor="releng")
    current = await tags(registry)
    assert current["130-2.f25docker"] == d130_2
    assert current["130"] == d130 and current["latest"] == d130
    streams = {s.version: s.eol for s in await engine.inventory.streams(REPO)}
    assert streams == {"129": False, "130": True}
    d131 = await candidate(engine, registry, "131", "1")
    await engine.publish(actor="releng")
    assert (await tags(registry))["latest"] == d131
    with pytest.raises(ReleaseError) as err:
        await engine.eol(f"{REPO}:latest", actor="maint")
    assert err.value.code is Code.INVALID


async def test_rollback_is_recorded(engine: ReleaseEngine, registry: Registry,
                                    clock: Clock) -> None:
    await setup_ns(engine)
    d130_1 = await candidate(engine, registry, "130", "1")
    await engine.publish(actor="releng")
    d130_2 = await candidate(engine, registry, "130", "2")
    await engine.publish(actor="releng")
    clock.advance(seconds=60)
    event = await engine.rollback(f"{REPO}:latest", to="130-1.f25docker",
                                  reason="130-2 crashes on start", actor="releng")
    assert (event.old_digest, event.new_digest) == (d130_2, d130_1)
    assert (await tags(registry))["latest"] == d130_1
    history = (await engine.inventory.history(REPO, "latest")).to_json()
    last = history["events"][-1]
    assert last["actor"] == "releng" and last["reason"] == "rollback: 130-2 crashes on start"
    for tag, to in (("latest", "x-130-2.f25docker"), ("130-2.f25docker", "130-1.f25docker"),
                    ("130", "131-1.f25docker")):
        with pytest.raises(ReleaseError) as err:
            await engine.rollback(f"{REPO}:{tag}", to=to, reason="r", actor="releng")
        assert err.value.code is Code.CONFLICT
        assert "rule rollback-" in err.value.message


async def test_history_at_time(engine: ReleaseEngine, registry: Registry, clock: Clock) -> None:
    await setup_ns(engine)
    before = clock.now - 1
    d1 = await candidate(engine, registry, "130", "1")
    await engine.publish(actor="releng")
    t1 = clock.advance(days=1)
    clock.advance(days=13)
    d2 = await candidate(engine, registry, "130", "2")
    await engine.publish(actor="releng")
    t2 = clock.advance(days=1)
    at1 = (await engine.inventory.history(REPO, "130", t1)).to_json()
    assert at1["digest"] == d1 and at1["nvr"] == "x-130-1.f25docker"
    at2 = (await engine.inventory.history(REPO, "130", t2)).to_json()
    assert at2["digest"] == d2 and len(at2["events"]) == 2
    assert (await engine.inventory.history(REPO, "130", before)).to_json()["digest"] is None


async def test_publish_is_all_or_nothing(engine: ReleaseEngine, registry: Registry,
                                         db: sa.Engine, clock: Clock) -> None:
    await setup_ns(engine, REPO, "f25/y")
    await candidate(engine, registry, "129", "1")
    await candidate(engine, registry, "130", "1")
    await candidate(engine, registry, "1", "1", repo="f25/y")
    writes: list[str] = []

    def fail_on_fourth(repository: str, tag: str) -> None:
        writes.append(f"{repository}:{tag}")
        if len(writes) == 4:
            raise RuntimeError("disk on fire")

    broken = release_engine(db, registry, clock=clock, after_tag_write=fail_on_fourth)
    with pytest.raises(RuntimeError):
        await broken.publish(actor="releng")
    assert len(writes) == 4
    assert await tags(registry) == {} and await tags(registry, "f25/y") == {}
    assert len(await engine.inventory.candidates(namespace="f25")) == 3
    assert await engine.releases() == []
    with db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(rt.tag_events)).scalar() == 0
    release = await engine.publish(actor="releng")
    assert release.status is ReleaseStatus.PUBLISHED
    assert set(await tags(registry)) == {"129-1.f25docker", "130-1.f25docker", "129", "130",
                                         "latest"}


async def test_an_nvr_tag_pushed_before_the_namespace_blocks_only_its_candidate(
        engine: ReleaseEngine, registry: Registry) -> None:
    """Before issue 11 a /v2/ push could mint an NVR tag; now only a tag written while the
    repository was not yet managed can collide, and candidate add refuses that build."""
    evil = await push(registry, REPO, make_image("x", "130", "1.f25docker", salt="evil"),
                      tag="130-1.f25docker")  # no namespace yet: scratch space
    await setup_ns(engine)
    digest = await push_build(registry, REPO, "130", "1.f25docker")
    with pytest.raises(ReleaseError) as err:
        await engine.inventory.add_candidate(REPO, digest, actor="maint")
    assert err.value.code is Code.CONFLICT and evil in err.value.message


async def _drop_manifest(db: sa.Engine, repo: str, digest: str) -> None:
    """What a /v2/ DELETE of a pending build did before issue 11 (now refused)."""
    from strata.meta import schema as t
    with db.begin() as conn:
        rid = conn.execute(sa.select(t.repositories.c.id).where(
            t.repositories.c.name == repo)).scalar_one()
        conn.execute(sa.delete(t.manifest_references).where(
            t.manifest_references.c.repository_id == rid,
            t.manifest_references.c.parent == digest))
        conn.execute(sa.delete(t.manifests).where(t.manifests.c.repository_id == rid,
                                                  t.manifests.c.digest == digest))


async def test_release_leaves_out_an_unusable_candidate_and_publishes_the_rest(
        engine: ReleaseEngine, registry: Registry, db: sa.Engine) -> None:
    await setup_ns(engine, REPO, "f25/y")
    dy = await candidate(engine, registry, "1", "1", repo="f25/y")
    d129 = await candidate(engine, registry, "129", "1")
    gone = await candidate(engine, registry, "130", "1")
    await _drop_manifest(db, REPO, gone)
    [plan] = [p.to_json() for p in await engine.plan()]
    [x_plan] = [i for i in plan["images"] if i["repository"] == REPO]
    assert [b["digest"] for b in x_plan["left_out"]] == [gone]
    assert x_plan["left_out"][0]["reason"].startswith("manifest-missing")
    release = await engine.publish(actor="releng")
    assert await tags(registry, "f25/y") == {"1-1.f25docker": dy, "1": dy, "latest": dy}
    assert await tags(registry) == {"129-1.f25docker": d129, "129": d129, "latest": d129}
    assert release.notes is not None
    [left] = release.notes["left_out"]
    assert (left["repository"], left["digest"], left["nvr"]) == (REPO, gone, "x-130-1.f25docker")
    assert "## Left out" in (release.notes_md or "")
    assert "x-130-1.f25docker" in (release.notes_md or "")
    pending = await engine.inventory.candidates(namespace="f25")
    assert [b.digest for b in pending] == [gone]  # still pending: fix it or withdraw it
    # an out-of-band release names its builds: one unusable build refuses it whole
    with pytest.raises(ReleaseError) as err:
        await engine.oob([f"{REPO}@{gone}"], advisories=["A-1"], reason="r", actor="releng")
    assert err.value.code is Code.CONFLICT and "manifest-missing" in err.value.message


async def test_scheduler_publishes_when_due_and_only_once(
        engine: ReleaseEngine, registry: Registry, db: sa.Engine, clock: Clock) -> None:
    await setup_ns(engine)
    await candidate(engine, registry, "130", "1")
    assert await engine.publish_due() == []
    clock.now = dt.datetime(2025, 6, 10, 0, 0, 1, tzinfo=dt.UTC).timestamp()
    other = release_engine(db, registry, clock=clock)
    results = await asyncio.gather(engine.publish_due(), other.publish_due())
    published = [r for batch in results for r in batch]
    assert [r.name for r in published] == ["f25-2025-06-10"]
    assert published[0].actor == "scheduler"
    assert await engine.publish_due() == []
    clock.now = dt.datetime(2025, 7, 30, tzinfo=dt.UTC).timestamp()  # server was down
    [late] = await engine.publish_due()
    assert late.name == "f25-2025-07-22"
    [plan] = [p.to_json() for p in await engine.plan()]
    assert plan["release"] == "f25-2025-08-05"


async def test_webhook_event_is_queued_with_the_release(engine: ReleaseEngine,
                                                        registry: Registry,
                                                        db: sa.Engine) -> None:
    await setup_ns(engine)
    await engine.add_webhook("http://127.0.0.1:9/hook", events=["release.published"])
    await candidate(engine, registry, "130", "1")
    await engine.publish(actor="releng")
    deliveries = [d.to_json() for d in await engine.deliveries()]
    assert [(d["event"], d["status"]) for d in deliveries] == [("release.published", "pending")]


async def _push_index(registry: Registry, children: list[tuple[str, int]]) -> str:
    """An OCI index of ``children`` (digest, size) pushed by digest; returns its digest."""
    import json

    from strata.oci import mediatypes as mt
    from strata.oci.digest import Digest
    from strata.oci.names import ManifestRef, RepositoryName

    body = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [
        {"mediaType": mt.OCI_MANIFEST, "digest": d, "size": size,
         "platform": {"architecture": "amd64", "os": "linux"}} for d, size in children]}).encode()
    digest = Digest.of(body)
    await registry.manifests.put(RepositoryName.parse(REPO), ManifestRef(digest=digest), body,
                                 mt.OCI_INDEX)
    return str(digest)


async def test_candidate_index_images_are_read_once_and_capped(
        engine: ReleaseEngine, registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    """An index listing one image 5,000 times reads its labels once; one listing more distinct
    images than a build has (``MAX_INDEX_IMAGES``) is refused before any is read."""
    from strata.release import labels

    await setup_ns(engine)
    image = make_image("x", "130", "1.f25docker")
    child = await push(registry, REPO, image)
    reads: list[str] = []
    real = labels._config_labels

    async def counting(registry_: Any, repo: Any, digest: Any) -> Any:
        reads.append(str(digest))
        return await real(registry_, repo, digest)

    monkeypatch.setattr(labels, "_config_labels", counting)
    index = await _push_index(registry, [(child, len(image.manifest))] * 5000)
    build = await engine.inventory.add_candidate(REPO, index, actor="maint")
    assert str(build.nvr) == "x-130-1.f25docker" and reads == [child]

    monkeypatch.setattr(labels, "MAX_INDEX_IMAGES", 3)
    others = []
    for i in range(4):
        other = make_image("x", "131", "1.f25docker", salt=str(i))
        others.append((await push(registry, REPO, other), len(other.manifest)))
    reads.clear()
    with pytest.raises(ReleaseError) as err:
        await engine.inventory.add_candidate(REPO, await _push_index(registry, others),
                                             actor="maint")
    assert err.value.code is Code.INVALID and "at most 3" in err.value.message
    assert reads == []


async def test_withdraw_takes_a_pending_build_out_and_records_why(
        engine: ReleaseEngine, registry: Registry, db: sa.Engine, clock: Clock) -> None:
    from strata.meta.database import Database
    from strata.meta.gc_store import SqlGarbageStore
    from strata.oci.digest import Digest
    from strata.oci.names import ManifestRef, RepositoryName
    await setup_ns(engine)
    d1 = await candidate(engine, registry, "1", "1")
    d2 = await candidate(engine, registry, "2", "1")
    with pytest.raises(ReleaseError) as err:
        await engine.inventory.withdraw_candidate(f"{REPO}@{d2}", actor="maint", reason=" ")
    assert err.value.code is Code.INVALID
    clock.advance(seconds=60)
    build = await engine.inventory.withdraw_candidate(f"{REPO}@{d2}", actor="maint",
                                                      reason="broken on arm")
    assert build.status is BuildStatus.WITHDRAWN
    assert (build.withdrawn_by, build.withdrawn_reason) == ("maint", "broken on arm")
    assert build.withdrawn_at == clock.now
    assert build.to_json()["withdrawn"]["reason"] == "broken on arm"
    again = await engine.inventory.withdraw_candidate(f"{REPO}@{d2}", actor="x", reason="y")
    assert again == build  # withdrawn once; the first record stays
    with pytest.raises(ReleaseError) as err:
        await engine.inventory.add_candidate(REPO, d2, actor="maint")
    assert err.value.code is Code.CONFLICT and "withdrawn by maint" in err.value.message
    listed = await engine.inventory.candidates(
        namespace="f25", status=(BuildStatus.CANDIDATE, BuildStatus.WITHDRAWN))
    assert [(b.digest, b.status) for b in listed] == [
        (d1, BuildStatus.CANDIDATE), (d2, BuildStatus.WITHDRAWN)]
    release = await engine.publish(actor="releng")
    assert await tags(registry) == {"1-1.f25docker": d1, "1": d1, "latest": d1}
    assert release.notes is not None and release.notes["left_out"] == []
    with pytest.raises(ReleaseError) as err:
        await engine.inventory.withdraw_candidate(f"{REPO}@{d1}", actor="maint", reason="r")
    assert err.value.code is Code.CONFLICT and "released" in err.value.message
    with pytest.raises(ReleaseError) as err:
        await engine.inventory.withdraw_candidate(f"{REPO}@sha256:{'0' * 64}", actor="m",
                                                  reason="r")
    assert err.value.code is Code.NOT_FOUND
    # garbage collection keeps pending and released builds, collects withdrawn ones
    d3 = await candidate(engine, registry, "3", "1")
    garbage = SqlGarbageStore(Database(db))
    [(rid, _)] = [r for r in await garbage.repositories() if r[1] == REPO]
    # (the registry stamps manifests with the real clock)
    sweep = await garbage.sweep_repository(rid, REPO, time.time() + 3600, dry_run=False)
    assert sweep.manifests == [d2]
    repo = RepositoryName.parse(REPO)
    for digest in (d1, d3):
        assert (await registry.manifests.get(repo, ManifestRef(digest=Digest.parse(digest))))
    # a withdrawn manifest may also be deleted through /v2/
    d4 = await candidate(engine, registry, "4", "1")
    with pytest.raises(RegistryError) as err:
        await registry.manifests.delete(repo, ManifestRef(digest=Digest.parse(d4)))
    assert err.value.code is Code.DENIED and err.value.detail["rule"] == "build-protected"
    await engine.inventory.withdraw_candidate(f"{REPO}@{d4}", actor="maint", reason="oops")
    await registry.manifests.delete(repo, ManifestRef(digest=Digest.parse(d4)))


async def test_candidate_not_newer_than_its_stream_warns_and_notes_say_so(
        engine: ReleaseEngine, registry: Registry) -> None:
    await setup_ns(engine)
    await candidate(engine, registry, "130", "2")
    await engine.publish(actor="releng")
    digest = await push_build(registry, REPO, "130", "1.f25docker")
    build = await engine.inventory.add_candidate(REPO, digest, actor="maint")
    [warning] = await engine.inventory.stream_warnings(build)
    assert warning.startswith("x-130-1.f25docker is not newer than the current release of its "
                              "stream (130: would move backwards from 130-2.f25docker")
    assert "only its NVR tag 130-1.f25docker and move no stream" in warning
    newer = await candidate(engine, registry, "131", "1")
    built = await engine.inventory.add_candidate(REPO, newer, actor="maint")
    assert await engine.inventory.stream_warnings(built) == []
    await engine.inventory.withdraw_candidate(f"{REPO}@{newer}", actor="maint", reason="r")
    release = await engine.publish(actor="releng")
    assert release.notes is not None
    [image] = release.notes["images"]
    assert image["streams_moved"] is False and image["moved_nothing"] is False
    assert "No stream moved for this image" in (release.notes_md or "")


async def test_release_leaves_out_a_candidate_whose_layer_is_gone(
        engine: ReleaseEngine, registry: Registry, db: sa.Engine) -> None:
    """A layer unlinked before the registry protected builds' content (the old blob-delete
    hole): the build cannot be pulled whole, so the release leaves it out with a note."""
    import json

    from strata.meta import schema as t

    await setup_ns(engine, REPO, "f25/y")
    good = await candidate(engine, registry, "1", "1", repo="f25/y")
    broken = await candidate(engine, registry, "130", "1")
    with db.begin() as conn:
        rid = conn.execute(sa.select(t.repositories.c.id).where(
            t.repositories.c.name == REPO)).scalar_one()
        content = conn.execute(sa.select(t.manifests.c.content).where(
            t.manifests.c.repository_id == rid, t.manifests.c.digest == broken)).scalar_one()
        layer = json.loads(content)["layers"][0]["digest"]
        conn.execute(sa.delete(t.repository_blobs).where(
            t.repository_blobs.c.repository_id == rid, t.repository_blobs.c.digest == layer))
    release = await engine.publish(actor="releng")
    assert await tags(registry, "f25/y") == {"1-1.f25docker": good, "1": good, "latest": good}
    assert await tags(registry) == {}
    assert release.notes is not None
    [left] = release.notes["left_out"]
    assert left["digest"] == broken and left["reason"].startswith(f"content-missing: {layer}")
