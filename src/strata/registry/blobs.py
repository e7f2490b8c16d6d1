"""Blob reads and deletes (distribution-spec "Pulling blobs", "Deleting blobs")."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from strata.errors import Code, RegistryError
from strata.meta.records import HeldBy
from strata.oci.digest import Digest
from strata.oci.names import RepositoryName
from strata.registry.ports import AllowAllTags, MetaStore, TagPolicy
from strata.storage.base import BlobStore, LocalBlobPaths


@dataclass(frozen=True, slots=True)
class BlobHandle:
    digest: Digest
    size: int
    path: str | None  # set when the store keeps blobs as local files (sendfile)


class BlobService:
    def __init__(self, meta: MetaStore, store: BlobStore,
                 policy: TagPolicy | None = None) -> None:
        self._meta = meta
        self._store = store
        self._policy = policy or AllowAllTags()
        # checked once: an isinstance against a Protocol costs ~5 µs, on every blob GET
        self._paths = store if isinstance(store, LocalBlobPaths) else None

    async def open(self, repo: RepositoryName, digest: Digest) -> BlobHandle:
        size = await self._meta.blob_size(repo.value, str(digest))
        if size is None:
            raise RegistryError(Code.BLOB_UNKNOWN, {"digest": str(digest)})
        path = self._paths.blob_path(digest) if self._paths is not None else None
        return BlobHandle(digest, size, path)

    def stream(self, handle: BlobHandle, start: int, end: int) -> AsyncIterator[bytes]:
        return self._store.read(handle.digest, start, end)

    async def delete(self, repo: RepositoryName, digest: Digest) -> None:
        """Unlink the blob from the repository (the policy may refuse: content of a release)."""
        def check(managed: bool, holders: Sequence[HeldBy]) -> None:
            self._policy.check_delete_sync(repo.value, str(digest), True, managed, holders)

        if not await self._meta.unlink_blob(repo.value, str(digest), check_held=check):
            raise RegistryError(Code.BLOB_UNKNOWN, {"digest": str(digest)})

    async def mount(self, repo: RepositoryName, source: RepositoryName,
                    digest: Digest) -> int | None:
        """Link a blob from ``source``; None when it is not there (caller falls back)."""
        return await self._meta.mount_blob(source.value, repo.value, str(digest))
