"""Repositories: existence and the catalog, in byte order with n/last paging."""

from __future__ import annotations

from strata.meta.registry_store import RegistryStore

from .helpers import add_blob, blob_digest

# Byte order: '-' < '.' < '/' < '0' < '_' < 'b'; a linguistic collation ignores the
# punctuation at first and sorts these quite differently.
NAMES = ["a_b", "ab", "a/b", "a0", "a.b", "a-b", "b", "a/b/c", "a-b/c", "A", "Z", "z"]


async def make(meta: RegistryStore, names: list[str]) -> None:
    for name in names:
        await add_blob(meta, name, blob_digest(name))


async def test_unknown_until_something_is_stored(meta: RegistryStore) -> None:
    assert not await meta.repository_exists("lib/x")
    assert await meta.list_repositories(None, None) == []
    await add_blob(meta, "lib/x", blob_digest("1"))
    assert await meta.repository_exists("lib/x")
    assert not await meta.repository_exists("lib")
    assert not await meta.repository_exists("LIB/X")
    assert await meta.list_repositories(None, None) == ["lib/x"]


async def test_catalog_is_in_byte_order(meta: RegistryStore) -> None:
    await make(meta, NAMES)
    assert await meta.list_repositories(None, None) == sorted(NAMES)


async def test_catalog_pages_with_n_and_last(meta: RegistryStore) -> None:
    await make(meta, NAMES)
    expected = sorted(NAMES)
    for n in (1, 2, 5, len(NAMES)):
        seen: list[str] = []
        last: str | None = None
        while True:
            page = await meta.list_repositories(n, last)
            assert len(page) <= n
            seen += page
            if len(page) < n:
                break
            last = page[-1]
        assert seen == expected, n
    # ``last`` need not name a repository: the page starts after it in byte order.
    for last in ("a", "a-", "a/", "a/b/", "Z", "_", "zz"):
        assert await meta.list_repositories(None, last) == [x for x in expected if x > last]
    assert await meta.list_repositories(0, None) == []
    assert await meta.list_repositories(3, "") == expected[:3]
