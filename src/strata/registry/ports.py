"""What the registry use-cases need from the metadata store and the write policy.

The use-cases depend on these protocols only; ``server/app.py`` and the CLI pick the concrete
store (``strata.meta.registry_store.RegistryStore``) and policies.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from strata.meta.records import (
    HeldBy,
    HoldCheck,
    ManifestRecord,
    Reference,
    Referrer,
    TagCheck,
    UploadRecord,
)


class MetaStore(Protocol):
    async def repository_exists(self, name: str) -> bool: ...
    async def list_repositories(self, n: int | None, last: str | None) -> list[str]: ...
    async def blob_size(self, repository: str, digest: str) -> int | None: ...
    async def mount_blob(self, source: str, target: str, digest: str) -> int | None: ...
    async def unlink_blob(self, repository: str, digest: str,
                          check_held: HoldCheck | None = None) -> bool: ...
    async def put_manifest(self, record: ManifestRecord, references: Sequence[Reference],
                           tags: Sequence[str], check_tag: TagCheck | None = None,
                           check_manifest: Callable[[bool], None] | None = None) -> None: ...
    async def get_manifest(self, repository: str, digest: str) -> ManifestRecord | None: ...
    async def resolve_tag(self, repository: str, tag: str) -> ManifestRecord | None: ...
    async def delete_manifest(self, repository: str, digest: str,
                              check_tag: TagCheck | None = None,
                              check_held: HoldCheck | None = None) -> bool: ...
    async def delete_tag(self, repository: str, tag: str,
                         check_tag: TagCheck | None = None) -> bool: ...
    async def list_tags(self, repository: str, n: int | None,
                        last: str | None) -> list[str] | None: ...
    async def referrers(self, repository: str, subject: str, *,
                        artifact_type: str | None = None, n: int | None = None,
                        last: str | None = None) -> list[Referrer]: ...
    async def get_upload(self, upload_id: str) -> UploadRecord | None: ...
    async def open_upload(self, record: UploadRecord, limit: int, idle_before: float,
                          stale_before: float) -> int: ...
    async def advance_upload(self, upload_id: str, repository: str, old_size: int,
                             new_size: int, hash_state: bytes | None = None) -> bool: ...
    async def finish_upload(self, upload_id: str, repository: str, digest: str, size: int,
                            place: Callable[[], None],
                            persist: Callable[[list[str]], None],
                            prepare: Callable[[], None] | None = None) -> None: ...
    async def delete_upload(self, upload_id: str) -> bool: ...
    async def stale_uploads(self, before: float,
                            idle_before: float | None = None) -> list[UploadRecord]: ...


class RepositorySweepResult(Protocol):
    repository: str
    manifests: list[str]
    links: list[str]


class GarbageStore(Protocol):
    """The metadata side of garbage collection (see ``strata.meta.gc_store``)."""

    async def repositories(self) -> list[tuple[int, str]]: ...
    async def simulate(self, cutoff: float
                       ) -> tuple[Sequence[RepositorySweepResult], list[tuple[str, int]]]: ...
    async def sweep_repository(self, rid: int, name: str, cutoff: float,
                               dry_run: bool) -> RepositorySweepResult: ...
    async def sweep_blobs(self, cutoff: float, dry_run: bool,
                          remove: Callable[[str], None]) -> list[tuple[str, int]]: ...
    async def sweep_orphan_files(self, candidates: list[tuple[str, int]], dry_run: bool,
                                 remove: Callable[[str], None]) -> list[tuple[str, int]]: ...


class TagPolicy(Protocol):
    """Decides whether a tag may be created, moved (``new`` set) or deleted (``new`` None)
    (:meth:`check_sync`), and whether a manifest or a blob may be deleted from a repository
    (:meth:`check_delete_sync`, given the manifests that hold it).

    Called inside the metadata transaction that writes the tag or deletes the content, with
    ``managed`` read in that same transaction (whether the repository is release-managed);
    raises RegistryError to refuse."""

    def check_sync(self, repository: str, tag: str, current: str | None,
                   new: str | None, managed: bool) -> None: ...

    def check_delete_sync(self, repository: str, digest: str, is_blob: bool, managed: bool,
                          holders: Sequence[HeldBy]) -> None: ...

    def check_manifest_sync(self, repository: str, artifact_type: str | None,
                            layer_types: Sequence[str], managed: bool) -> None:
        """Whether a manifest may be pushed at all (whatever its tags): a signature in a
        managed repository is the release's to write."""
        ...


class AllowAllTags:
    """The policy when no release streams are configured: any tag write is allowed."""

    def check_sync(self, repository: str, tag: str, current: str | None,
                   new: str | None, managed: bool) -> None:
        return None

    def check_delete_sync(self, repository: str, digest: str, is_blob: bool, managed: bool,
                          holders: Sequence[HeldBy]) -> None:
        return None

    def check_manifest_sync(self, repository: str, artifact_type: str | None,
                            layer_types: Sequence[str], managed: bool) -> None:
        return None
