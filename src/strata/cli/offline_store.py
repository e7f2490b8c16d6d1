"""The blob store an offline command (``scrub``, ``gc``) acts on is the registry's: with
``--blob-store s3://BUCKET/PREFIX`` the bucket must exist and be usable, and when the database
knows blobs the prefix must hold some. Otherwise the command is refused with one line and
nothing is created (not even the local spool directory)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from strata.cli.common import fail

if TYPE_CHECKING:
    from strata.meta.database import Database


def check_blob_store(blob_store: str | None, db: Database) -> None:
    """Refuse (exit 1) a ``--blob-store`` that is not where this database's blobs are."""
    if blob_store is None:
        return  # files in --data: open_database checked its blobs/ directory
    from strata.meta.scrub_store import SqlScrubStore
    from strata.storage.s3_objects import S3Location
    from strata.storage.s3_probe import S3ProbeError, probe

    try:
        found = probe(S3Location.parse(blob_store))
    except ValueError as exc:
        fail(f"--blob-store: {exc}")
        return
    except S3ProbeError as exc:
        fail(f"--blob-store: {exc}")
        return
    if found.has_blobs:
        return
    known = asyncio.run(SqlScrubStore(db).blobs_after("", 1))
    if known:
        fail(f"no strata blobs in {found.where} while {db.url} has some (e.g. {known[0][0]}): "
             "check --blob-store (bucket and prefix) / $STRATA_BLOB_STORE")
