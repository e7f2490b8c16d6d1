"""Online garbage collection: removes what no tag, index or live subject refers to.

Runs while the registry serves. Anything created, pushed or asked for within the grace period
is kept, so a push in progress (blobs first, manifest last) never loses its blobs; the metadata
steps are short transactions (see ``strata.meta.gc_store``).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

from strata.oci.digest import Digest
from strata.registry.ports import GarbageStore, RepositorySweepResult
from strata.registry.uploads import UploadService
from strata.storage.base import BlobStore

#: Old blob files looked up against the blob rows per orphan-sweep step.
ORPHAN_BATCH = 500


@dataclass
class GcReport:
    dry_run: bool
    manifests: list[tuple[str, str]] = field(default_factory=list)  # (repository, digest)
    links: int = 0
    blobs: list[tuple[str, int]] = field(default_factory=list)  # (digest, size)
    orphan_files: list[tuple[str, int]] = field(default_factory=list)
    uploads: int = 0
    seconds: float = 0.0

    @property
    def bytes(self) -> int:
        return sum(s for _, s in self.blobs) + sum(s for _, s in self.orphan_files)

    def to_json(self) -> dict[str, object]:
        return {
            "dry_run": self.dry_run,
            "manifests": [{"repository": r, "digest": d} for r, d in self.manifests],
            "links": self.links,
            "blobs": [{"digest": d, "size": s} for d, s in self.blobs],
            "orphan_files": [{"digest": d, "size": s} for d, s in self.orphan_files],
            "uploads_expired": self.uploads,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
        }


class GarbageCollector:
    def __init__(self, garbage: GarbageStore, store: BlobStore, uploads: UploadService, *,
                 grace_seconds: float = 3600.0,
                 clock: Callable[[], float] = time.time) -> None:
        self._garbage = garbage
        self._store = store
        self._uploads = uploads
        self._grace = grace_seconds
        self._clock = clock

    def _remove(self, digest: str) -> None:
        self._store.remove_now(Digest.parse(digest))

    async def _old_files(self, cutoff: float) -> AsyncIterator[list[tuple[str, int]]]:
        """The store's files older than ``cutoff`` as (digest, size), ORPHAN_BATCH at a time
        as the walk finds them (each batch one short orphan-sweep step): never a list of
        every old file in the store."""
        batch: list[tuple[str, int]] = []
        async for d, size, mtime in self._store.digests():
            if mtime < cutoff:
                batch.append((str(d), size))
                if len(batch) >= ORPHAN_BATCH:
                    yield batch
                    batch = []
        if batch:
            yield batch

    async def collect(self, *, dry_run: bool = False) -> GcReport:
        started = time.monotonic()
        cutoff = self._clock() - self._grace
        report = GcReport(dry_run)
        sweeps: Sequence[RepositorySweepResult]
        if dry_run:
            sweeps, report.blobs = await self._garbage.simulate(cutoff)
        else:
            sweeps = [await self._garbage.sweep_repository(rid, name, cutoff, False)
                      for rid, name in await self._garbage.repositories()]
            report.blobs = await self._garbage.sweep_blobs(cutoff, False, self._remove)
        for sweep in sweeps:
            report.manifests += [(sweep.repository, d) for d in sweep.manifests]
            report.links += len(sweep.links)
        async for old_files in self._old_files(cutoff):
            report.orphan_files += await self._garbage.sweep_orphan_files(
                old_files, dry_run, self._remove)
        if not dry_run:
            report.uploads = await self._uploads.expire()
        report.seconds = time.monotonic() - started
        return report
