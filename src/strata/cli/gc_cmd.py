"""``strata gc [--dry-run]``: online garbage collection over a data dir."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from strata.cli.common import emit, open_database, store_options
from strata.cli.offline_store import check_blob_store
from strata.compose import build_registry, build_store
from strata.config import ServerSettings
from strata.registry.gc import GarbageCollector, GcReport
from strata.registry.limits import Limits
from strata.storage.base import BlobStore
from strata.storage.private import owner_only_umask


def _text(report: GcReport) -> str:
    verb = "would remove" if report.dry_run else "removed"
    lines = [f"{verb} {len(report.manifests)} manifest(s), {report.links} blob link(s), "
             f"{len(report.blobs) + len(report.orphan_files)} blob(s), "
             f"{report.bytes} bytes ({report.bytes / (1 << 20):.1f} MiB)"]
    lines += [f"  manifest {repo}@{digest}" for repo, digest in report.manifests]
    lines += [f"  blob {digest} {size}" for digest, size in report.blobs]
    lines += [f"  orphan file {digest} {size}" for digest, size in report.orphan_files]
    if not report.dry_run:
        lines.append(f"expired {report.uploads} upload session(s)")
    return "\n".join(lines)


@click.command()
@store_options
@click.option("--dry-run", is_flag=True, help="Print what would go and how many bytes.")
@click.option("--grace", type=float, default=3600.0, show_default=True,
              help="Keep anything created or used within this many seconds.")
@click.option("--upload-ttl", type=float, default=86400.0, show_default=True,
              help="Upload sessions idle longer than this expire.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def gc(data_dir: Path, database_url: str | None, blob_store: str | None, dry_run: bool,
       grace: float, upload_ttl: float, as_json: bool) -> None:
    """Remove blobs and manifests that no tag, index or live subject refers to.

    With --dry-run it only looks: the database is opened read-only and never migrated."""
    settings = ServerSettings(data_dir=data_dir.resolve(), database_url=database_url,
                              blob_store=blob_store, gc_grace=grace,
                              limits=Limits(upload_ttl_seconds=upload_ttl))
    owner_only_umask()

    async def collect(collector: GarbageCollector, store: BlobStore) -> GcReport:
        try:
            return await collector.collect(dry_run=dry_run)
        finally:
            await store.close()

    with open_database(settings.data_dir, database_url, readonly=dry_run,
                       blob_store=blob_store, blobs=True) as db:
        check_blob_store(blob_store, db)
        store = build_store(settings)
        collector = build_registry(settings, db, store).gc
        assert collector is not None
        report = asyncio.run(collect(collector, store))
    emit(report.to_json(), as_json, lambda _: _text(report))
