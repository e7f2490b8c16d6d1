"""Manifests: store with references, read back, delete, vetoes that roll the write back,
referrers order."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from strata.errors import Code, RegistryError
from strata.meta import schema as rt
from strata.meta import schema as t
from strata.meta.registry_store import RegistryStore
from strata.oci.mediatypes import OCI_INDEX, OCI_MANIFEST

from .conftest import Clock
from .helpers import add_blob, blob_digest, count, digest_of, link_row, manifest, push, tag_events


async def test_round_trip_keeps_every_field(meta: RegistryStore, clock: Clock) -> None:
    layer = blob_digest("l")
    await add_blob(meta, "lib/x", layer)
    record, refs = manifest("lib/x", "m", layers=[layer], artifact_type="application/x.test",
                            subject=blob_digest("s"),
                            annotations={"org.opencontainers.image.title": "ünïcode ✓"})
    await meta.put_manifest(record, refs, [])
    got = await meta.get_manifest("lib/x", record.digest)
    assert got is not None
    assert got == record.__class__(**{**{f: getattr(record, f) for f in (
        "repository", "digest", "media_type", "size", "content", "artifact_type", "subject",
        "annotations")}, "created_at": clock.now})
    assert isinstance(got.content, bytes) and got.content == record.content
    assert got.annotations == {"org.opencontainers.image.title": "ünïcode ✓"}
    assert got.created_at == clock.now  # a float, to the microsecond and beyond
    assert await meta.get_manifest("lib/x", blob_digest("other")) is None
    assert await meta.get_manifest("lib/y", record.digest) is None


async def test_binary_content_is_stored_exactly(meta: RegistryStore) -> None:
    record, _ = manifest("lib/x", "m")
    raw = bytes(range(256)) * 3  # NUL bytes, invalid UTF-8: stored as bytes, not text
    record = record.__class__(**{**{f: getattr(record, f) for f in (
        "repository", "digest", "media_type", "artifact_type", "subject")},
        "content": raw, "size": len(raw)})
    await meta.put_manifest(record, [], ["t"])
    got = await meta.resolve_tag("lib/x", "t")
    assert got is not None and got.content == raw and got.size == len(raw)
    assert got.annotations == {}


async def test_missing_blob_is_refused_and_nothing_is_written(meta: RegistryStore,
                                                               engine: sa.Engine) -> None:
    present, missing = blob_digest("present"), blob_digest("missing")
    await add_blob(meta, "lib/x", present)
    await add_blob(meta, "lib/other", missing)  # linked elsewhere only: still unknown here
    record, refs = manifest("lib/x", "m", layers=[present, missing])
    with pytest.raises(RegistryError) as err:
        await meta.put_manifest(record, refs, ["latest"])
    assert err.value.code is Code.MANIFEST_BLOB_UNKNOWN
    assert missing in str(err.value.detail) and err.value.status == 400
    assert await meta.get_manifest("lib/x", record.digest) is None
    assert await meta.list_tags("lib/x", None, None) == []
    assert count(engine, t.manifest_references) == 0
    assert tag_events(engine, "lib/x") == []
    # Nothing at all is created in a repository that did not exist.
    with pytest.raises(RegistryError):
        await meta.put_manifest(manifest("lib/new", "m", layers=[present])[0],
                                manifest("lib/new", "m", layers=[present])[1], ["t"])
    assert not await meta.repository_exists("lib/new")


async def test_missing_child_manifest_is_refused(meta: RegistryStore) -> None:
    child = await push(meta, "lib/x", "child", [])
    absent = manifest("lib/x", "absent")[0].digest
    index, refs = manifest("lib/x", "index", children=[child.digest, absent])
    with pytest.raises(RegistryError) as err:
        await meta.put_manifest(index, refs, ["multi"])
    assert err.value.code is Code.MANIFEST_UNKNOWN
    assert err.value.status == 400 and absent in str(err.value.detail)
    assert await meta.resolve_tag("lib/x", "multi") is None
    ok, refs = manifest("lib/x", "index", children=[child.digest])
    await meta.put_manifest(ok, refs, ["multi"])
    got = await meta.resolve_tag("lib/x", "multi")
    assert got is not None and got.media_type == OCI_INDEX and got.digest == ok.digest


async def test_references_mark_links_used(meta: RegistryStore, engine: sa.Engine,
                                          clock: Clock) -> None:
    layer = blob_digest("l")
    await add_blob(meta, "lib/x", layer)
    created = clock.now
    clock.advance(500)
    await push(meta, "lib/x", "m", [])
    record, refs = manifest("lib/x", "n", layers=[layer])
    await meta.put_manifest(record, refs, [])
    assert link_row(engine, "lib/x", layer) == (created, clock.now)


async def test_put_is_idempotent_and_references_are_stored_once(
        meta: RegistryStore, engine: sa.Engine) -> None:
    layer = blob_digest("l")
    await add_blob(meta, "lib/x", layer)
    record, refs = manifest("lib/x", "m", layers=[layer, layer])  # listed twice
    await meta.put_manifest(record, refs, ["a"])
    await meta.put_manifest(record, refs, ["a", "b"])
    assert count(engine, t.manifests) == 1
    assert count(engine, t.manifest_references) == 1
    assert await meta.list_tags("lib/x", None, None) == ["a", "b"]


async def test_delete_manifest_drops_its_tags_with_history(meta: RegistryStore,
                                                            engine: sa.Engine) -> None:
    one = await push(meta, "lib/x", "one", ["a", "b"])
    two = await push(meta, "lib/x", "two", ["c"])
    assert await meta.delete_manifest("lib/x", one.digest)
    assert await meta.get_manifest("lib/x", one.digest) is None
    assert await meta.list_tags("lib/x", None, None) == ["c"]
    assert await digest_of(meta.resolve_tag("lib/x", "c")) == two.digest
    assert not await meta.delete_manifest("lib/x", one.digest)
    assert not await meta.delete_manifest("nope", one.digest)
    assert sorted(e for e in tag_events(engine, "lib/x") if e[2] is None) == [
        ("a", one.digest, None), ("b", one.digest, None)]
    with engine.connect() as conn:
        parents = {r[0] for r in conn.execute(sa.select(t.manifest_references.c.parent))}
    assert parents == {two.digest}
    # Its blobs stay linked (garbage collection decides about them).
    assert await meta.blob_size("lib/x", blob_digest("one/0")) == 10


def refuse(name: str) -> rt.TagCheck:
    def check(tag: str, current: str | None, managed: bool) -> None:
        if tag == name:
            raise RegistryError(Code.DENIED, f"tag {tag} is protected")
    return check


async def test_a_vetoed_tag_rolls_the_whole_write_back(meta: RegistryStore,
                                                        engine: sa.Engine) -> None:
    layer = blob_digest("l")
    await add_blob(meta, "lib/x", layer)
    record, refs = manifest("lib/x", "m", layers=[layer])
    with pytest.raises(RegistryError) as err:
        await meta.put_manifest(record, refs, ["ok", "frozen", "later"], check_tag=refuse("frozen"))
    assert err.value.code is Code.DENIED
    assert await meta.get_manifest("lib/x", record.digest) is None
    assert await meta.list_tags("lib/x", None, None) == []
    assert count(engine, t.manifest_references) == 0
    assert tag_events(engine, "lib/x") == []

    # In a new repository, not even the repository is left behind.
    with pytest.raises(RegistryError):
        await meta.put_manifest(manifest("lib/new", "m")[0], [], ["frozen"],
                                check_tag=refuse("frozen"))
    assert not await meta.repository_exists("lib/new")

    # Deletes are vetoed the same way.
    one = await push(meta, "lib/x", "one", ["keep", "frozen"])
    with pytest.raises(RegistryError):
        await meta.delete_manifest("lib/x", one.digest, check_tag=refuse("frozen"))
    with pytest.raises(RegistryError):
        await meta.delete_tag("lib/x", "frozen", check_tag=refuse("frozen"))
    assert await meta.list_tags("lib/x", None, None) == ["frozen", "keep"]
    assert await digest_of(meta.get_manifest("lib/x", one.digest)) == one.digest
    assert len(tag_events(engine, "lib/x")) == 2


async def test_check_tag_sees_the_current_digest_and_managed(meta: RegistryStore,
                                                              engine: sa.Engine) -> None:
    seen: list[tuple[str, str | None, bool]] = []

    def check(tag: str, current: str | None, managed: bool) -> None:
        seen.append((tag, current, managed))

    one, _ = manifest("f/x", "one")
    two, _ = manifest("f/x", "two")
    await meta.put_manifest(one, [], ["latest"], check_tag=check)
    with engine.begin() as conn:
        conn.execute(sa.insert(rt.namespaces).values(name="f", dist_tag="", interval_days=14,
                                                     anchor="2025-06-10", created_at=0.0))
        conn.execute(sa.insert(rt.images).values(repository="f/x", namespace="f", name="x",
                                                 status="active", created_at=0.0))
    await meta.put_manifest(two, [], ["latest"], check_tag=check)
    await meta.delete_tag("f/x", "latest", check_tag=check)
    assert seen == [("latest", None, False), ("latest", one.digest, True),
                    ("latest", two.digest, True)]


async def test_referrers_in_digest_order_paged_and_filtered(meta: RegistryStore,
                                                            clock: Clock) -> None:
    subject = await push(meta, "lib/x", "subject", ["v1"])
    other = await push(meta, "lib/x", "other", [])
    made = []
    for i, seed in enumerate(["r0", "r1", "r2", "r3", "r4"]):
        clock.advance(0.001)
        record, _ = manifest("lib/x", seed, subject=subject.digest,
                             artifact_type=f"application/x.{'even' if i % 2 == 0 else 'odd'}")
        await meta.put_manifest(record, [], [])
        made.append(record.digest)
    unrelated, _ = manifest("lib/x", "u", subject=other.digest)
    await meta.put_manifest(unrelated, [], [])
    elsewhere, _ = manifest("lib/y", "r9", subject=subject.digest)
    await meta.put_manifest(elsewhere, [], [])
    got = await meta.referrers("lib/x", subject.digest)
    assert [r.digest for r in got] == sorted(made)  # digest order, not creation order
    assert all(r.media_type == OCI_MANIFEST for r in got)
    # Keyset pages: n, then everything after ``last``.
    first = await meta.referrers("lib/x", subject.digest, n=2)
    rest = await meta.referrers("lib/x", subject.digest, last=first[-1].digest)
    assert [r.digest for r in first + rest] == sorted(made)
    assert len(first) == 2
    even = await meta.referrers("lib/x", subject.digest, artifact_type="application/x.even")
    assert [r.digest for r in even] == sorted(made[0::2])
    assert {r.artifact_type for r in even} == {"application/x.even"}
    assert await meta.referrers("lib/x", subject.digest, last=max(made)) == []
    assert await meta.referrers("lib/x", blob_digest("none")) == []
    assert await meta.referrers("nope", subject.digest) == []


async def test_deletes_see_the_manifests_holding_the_content(meta: RegistryStore,
                                                             engine: sa.Engine) -> None:
    """``check_held(managed, holders)``: the manifest itself and the indexes listing it, or the
    manifests (and their indexes) referencing a blob, each with its build and tags; managed
    from the namespace alone (issue 11)."""
    from collections.abc import Sequence

    from strata.meta.records import HeldBy

    layer = blob_digest("held/0")
    await add_blob(meta, "f/x", layer)
    image, refs = manifest("f/x", "image", layers=[layer])
    await meta.put_manifest(image, refs, [])
    idx, idx_refs = manifest("f/x", "index", children=[image.digest])
    await meta.put_manifest(idx, idx_refs, ["latest"])
    with engine.begin() as conn:
        conn.execute(sa.insert(rt.namespaces).values(name="f", dist_tag="", interval_days=14,
                                                     anchor="2025-06-10", created_at=0.0))
        conn.execute(sa.insert(rt.images).values(repository="f/x", namespace="f", name="x",
                                                 status="active", created_at=0.0))
        conn.execute(sa.insert(rt.candidates).values(
            repository="f/x", digest=idx.digest, name="x", version="1", release="1",
            status="candidate", created_at=0.0, created_by="m"))
    seen: list[tuple[bool, list[HeldBy]]] = []

    def refuse(managed: bool, holders: Sequence[HeldBy]) -> None:
        seen.append((managed, sorted(holders, key=lambda h: h.digest)))
        raise RegistryError(Code.DENIED)

    expected = sorted([HeldBy(image.digest, None, None, ()),
                       HeldBy(idx.digest, "candidate", "x-1-1", ("latest",))],
                      key=lambda h: h.digest)
    with pytest.raises(RegistryError):
        await meta.delete_manifest("f/x", image.digest, check_held=refuse)
    with pytest.raises(RegistryError):
        await meta.unlink_blob("f/x", layer, check_held=refuse)
    assert seen == [(True, expected), (True, expected)]
    assert await digest_of(meta.get_manifest("f/x", image.digest)) == image.digest
    assert link_row(engine, "f/x", layer) is not None
    # without a veto both go
    assert await meta.unlink_blob("f/x", layer, check_held=lambda m, h: None)
    assert await meta.delete_manifest("f/x", idx.digest, check_held=lambda m, h: None)
