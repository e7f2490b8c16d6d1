"""Tags: resolve, list in byte order with n/last paging, delete, and the tag history."""

from __future__ import annotations

import sqlalchemy as sa

from strata.meta.registry_store import RegistryStore

from .helpers import TRICKY_TAGS, digest_of, push, tag_events


async def test_tags_come_back_in_byte_order(meta: RegistryStore) -> None:
    await push(meta, "lib/x", "m", TRICKY_TAGS)
    assert await meta.list_tags("lib/x", None, None) == sorted(TRICKY_TAGS)
    assert sorted(TRICKY_TAGS) == ["A", "B", "_x", "a", "a-b", "a.b", "a_b"]


async def test_tags_page_with_n_and_last(meta: RegistryStore) -> None:
    more = [*TRICKY_TAGS, "1.0", "1.0-rc1", "1.0.1", "10", "9", "latest", "Latest", "v1_2"]
    await push(meta, "lib/x", "m", more)
    expected = sorted(more)
    for n in (1, 2, 3, len(more) + 1):
        seen: list[str] = []
        last: str | None = None
        while True:
            page = await meta.list_tags("lib/x", n, last)
            assert page is not None and len(page) <= n
            seen += page
            if len(page) < n:
                break
            last = page[-1]
        assert seen == expected, n
    for last in ("A", "Z", "_", "a", "a-", "a.a", "1.0-", "latest0"):
        assert await meta.list_tags("lib/x", None, last) == [x for x in expected if x > last]
        assert await meta.list_tags("lib/x", 2, last) == [x for x in expected if x > last][:2]


async def test_unknown_repository_has_no_tag_list(meta: RegistryStore) -> None:
    assert await meta.list_tags("nope", None, None) is None
    await push(meta, "lib/x", "m", [])
    assert await meta.list_tags("lib/x", None, None) == []
    assert await meta.list_tags("lib/y", None, None) is None


async def test_tags_of_other_repositories_stay_apart(meta: RegistryStore) -> None:
    await push(meta, "lib/x", "m", ["a", "b"])
    await push(meta, "lib/xy", "m", ["c"])
    assert await meta.list_tags("lib/x", None, None) == ["a", "b"]
    assert await meta.list_tags("lib/xy", None, None) == ["c"]
    assert await meta.resolve_tag("lib/xy", "a") is None


async def test_resolve_moves_and_history(meta: RegistryStore, engine: sa.Engine) -> None:
    one = await push(meta, "lib/x", "one", ["latest", "1"])
    resolved = await meta.resolve_tag("lib/x", "latest")
    assert resolved is not None
    assert (resolved.digest, resolved.content) == (one.digest, one.content)
    assert await meta.resolve_tag("lib/x", "nope") is None
    assert await meta.resolve_tag("nope", "latest") is None
    two = await push(meta, "lib/x", "two", ["latest"])
    assert await digest_of(meta.resolve_tag("lib/x", "latest")) == two.digest
    assert await digest_of(meta.resolve_tag("lib/x", "1")) == one.digest
    await meta.put_manifest(two, [], ["latest"])  # same digest again: no event
    assert tag_events(engine, "lib/x") == [
        ("latest", None, one.digest), ("1", None, one.digest),
        ("latest", one.digest, two.digest)]


async def test_delete_tag(meta: RegistryStore, engine: sa.Engine) -> None:
    one = await push(meta, "lib/x", "one", ["a", "b"])
    assert await meta.delete_tag("lib/x", "a")
    assert not await meta.delete_tag("lib/x", "a")
    assert not await meta.delete_tag("nope", "a")
    assert await meta.list_tags("lib/x", None, None) == ["b"]
    assert await meta.resolve_tag("lib/x", "a") is None
    assert await digest_of(meta.get_manifest("lib/x", one.digest)) == one.digest  # it stays
    assert tag_events(engine, "lib/x", "a") == [("a", None, one.digest), ("a", one.digest, None)]
