"""SqlScrubStore's pages over both backends: every blob row and every manifest exactly once,
in order, whatever the page size (keyset pagination, byte order on PostgreSQL too)."""

from __future__ import annotations

import sqlalchemy as sa

from strata.meta.database import Database
from strata.meta.registry_store import RegistryStore
from strata.meta.scrub_store import SqlScrubStore

from .helpers import add_blob, push, sha


async def test_pages_visit_every_row_once(meta: RegistryStore, engine: sa.Engine) -> None:
    digests = sorted(sha(f"blob {i}".encode()) for i in range(7))
    for i, digest in enumerate(digests):
        await add_blob(meta, "a/b" if i % 2 else "A/b", digest, size=i + 1)
    pushed = [await push(meta, repo, seed, ["t"]) for repo, seed in
              [("lib/z", "1"), ("lib/Z", "2"), ("lib/z", "3"), ("lib-x", "4")]]
    store = SqlScrubStore(Database(engine))
    for page in (1, 2, 100):
        seen: list[tuple[str, int]] = []
        after = ""
        while rows := await store.blobs_after(after, page):
            seen += rows
            after = rows[-1][0]
        assert [d for d, _ in seen] == sorted(d for d, _ in seen)
        assert set(digests) <= {d for d, _ in seen}
        assert len(seen) == len({d for d, _ in seen})
        manifests: list[tuple[str, str, bytes]] = []
        key = ("", "")
        while got := await store.manifests_after(key, page):
            manifests += got
            key = (got[-1][0], got[-1][1])
        assert sorted((r, d) for r, d, _ in manifests) == [(r, d) for r, d, _ in manifests]
        assert {(m.repository, m.digest) for m in pushed} == {(r, d) for r, d, _ in manifests}
        assert all(sha(content) == d for _, d, content in manifests)
