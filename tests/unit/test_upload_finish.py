"""Finishing an upload: the bytes are synced before the blob is placed, on the thread that
queues the metadata transaction when the store can sync blocking (the filesystem), else
awaited first (S3)."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from strata.meta.database import Database
from strata.meta.registry_store import RegistryStore
from strata.oci.digest import Digest
from strata.oci.names import RepositoryName
from strata.registry.limits import Limits
from strata.registry.uploads import UploadService
from strata.storage.filesystem import FilesystemBlobStore


class Recording(FilesystemBlobStore):
    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.calls: list[tuple[str, int]] = []

    def upload_sync_blocking(self, upload_id: str, digest: Digest, size: int) -> None:
        self.calls.append(("sync", threading.get_ident()))
        super().upload_sync_blocking(upload_id, digest, size)

    def upload_place(self, upload_id: str, digest: Digest, size: int | None = None) -> bool:
        self.calls.append(("place", threading.get_ident()))
        return super().upload_place(upload_id, digest, size)


class NoBlockingSync:
    """The filesystem store without the blocking-sync power (as S3)."""

    def __init__(self, store: Recording) -> None:
        self._store = store

    async def upload_sync(self, upload_id: str, digest: Digest, size: int) -> None:
        self._store.calls.append(("async sync", threading.get_ident()))
        await self._store.upload_sync(upload_id, digest, size)

    def __getattr__(self, name: str) -> Any:
        if name == "upload_sync_blocking":
            raise AttributeError(name)
        return getattr(self._store, name)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'strata.db'}")
    database.migrate()
    yield database
    database.close()


async def body(data: bytes) -> AsyncIterator[bytes]:
    yield data


@pytest.mark.parametrize("blocking", [True, False])
async def test_the_bytes_are_synced_before_they_are_placed(db: Database, tmp_path: Path,
                                                           blocking: bool) -> None:
    store = Recording(tmp_path / "data")
    uploads = UploadService(RegistryStore(db), store if blocking else NoBlockingSync(store),
                            Limits())
    repo = RepositoryName.parse("lib/x")
    data = b"some layer" * 1000
    digest = Digest.parse("sha256:" + hashlib.sha256(data).hexdigest())
    session = await uploads.start(repo)
    assert await uploads.finish(repo, session.id, digest, body(data), len(data)) == len(data)
    loop_thread = threading.get_ident()
    kinds = [kind for kind, _ in store.calls]
    if blocking:
        assert kinds == ["sync", "place"]
        assert store.calls[0][1] != loop_thread  # on a thread
    else:
        assert kinds == ["async sync", "sync", "place"]
    assert Path(store.blob_path(digest)).read_bytes() == data  # noqa: ASYNC240
