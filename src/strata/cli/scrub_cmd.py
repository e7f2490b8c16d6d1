"""``strata scrub [--quick]``: check every stored blob and manifest against its digest."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from strata.cli.common import emit, open_database, store_options
from strata.cli.offline_store import check_blob_store
from strata.compose import build_store
from strata.config import ServerSettings
from strata.meta.scrub_store import SqlScrubStore
from strata.registry.scrub import Scrubber, ScrubReport
from strata.storage.base import BlobStore


def _text(report: ScrubReport) -> str:
    how = "sizes" if report.quick else "sizes and digests"
    lines = [f"checked {report.blobs} blob(s) ({report.blob_bytes} bytes, {how}) and "
             f"{report.manifests} manifest(s) in {report.seconds:.1f} s: "
             + ("all good" if report.ok else f"{len(report.problems)} problem(s)")]
    for p in report.problems:
        where = f" in {p.repository}" if p.repository else ""
        lines.append(f"  {p.kind} {p.digest}{where}: {p.problem}: {p.detail}")
    return "\n".join(lines)


@click.command()
@store_options
@click.option("--quick", is_flag=True, help="Check presence and sizes only, not digests.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def scrub(data_dir: Path, database_url: str | None, blob_store: str | None, quick: bool,
          as_json: bool) -> None:
    """Check that every blob and manifest is stored whole (exit 1 if any is not).

    Read-only (the database is opened read-only and never migrated), and safe while the
    registry serves."""
    settings = ServerSettings(data_dir=data_dir.resolve(), database_url=database_url,
                              blob_store=blob_store)

    async def run(scrubber: Scrubber, store: BlobStore) -> ScrubReport:
        try:
            return await scrubber.run(quick=quick)
        finally:
            await store.close()

    with open_database(settings.data_dir, database_url, readonly=True, blob_store=blob_store,
                       blobs=True) as db:
        check_blob_store(blob_store, db)
        store = build_store(settings)
        report = asyncio.run(run(Scrubber(SqlScrubStore(db), store), store))
    emit(report.to_json(), as_json, lambda _: _text(report))
    if not report.ok:
        sys.exit(1)
