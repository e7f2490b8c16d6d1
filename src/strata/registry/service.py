"""The registry's use-cases bundled for the HTTP layer and the CLI."""

from __future__ import annotations

from dataclasses import dataclass

from strata.registry.blobs import BlobService
from strata.registry.discovery import DiscoveryService
from strata.registry.gc import GarbageCollector
from strata.registry.limits import Limits
from strata.registry.manifests import ManifestService
from strata.registry.ports import AllowAllTags, GarbageStore, MetaStore, TagPolicy
from strata.registry.uploads import UploadService
from strata.storage.base import BlobStore


@dataclass(frozen=True)
class Registry:
    blobs: BlobService
    uploads: UploadService
    manifests: ManifestService
    discovery: DiscoveryService
    limits: Limits
    gc: GarbageCollector | None = None

    @classmethod
    def build(cls, meta: MetaStore, store: BlobStore, *, limits: Limits | None = None,
              policy: TagPolicy | None = None, garbage: GarbageStore | None = None,
              gc_grace_seconds: float = 3600.0, decode_in_process: bool = False) -> Registry:
        """``decode_in_process``: large manifests are decoded in a process of their own (see
        ``registry.manifests``), not on a thread; for ``strata serve``."""
        limits = limits or Limits()
        policy = policy or AllowAllTags()
        uploads = UploadService(meta, store, limits)
        return cls(
            blobs=BlobService(meta, store, policy),
            uploads=uploads,
            manifests=ManifestService(meta, policy, limits,
                                      decode_in_process=decode_in_process),
            discovery=DiscoveryService(meta, limits),
            limits=limits,
            gc=GarbageCollector(garbage, store, uploads, grace_seconds=gc_grace_seconds)
            if garbage is not None else None,
        )
