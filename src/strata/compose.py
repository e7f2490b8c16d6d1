"""Composition: the stores a process works on, built from its settings (``strata serve``'s
workers and the offline commands ``strata gc`` and ``strata scrub`` alike).

It knows the concrete drivers (the metadata ``Database``, the blob store) and hands them to
the use-cases; neither the server nor the CLI builds a store any other way, and the CLI needs
nothing of the server for it.
"""

from __future__ import annotations

from strata.config import ServerSettings
from strata.meta.connection import sqlite_url
from strata.meta.database import Database
from strata.meta.gc_store import SqlGarbageStore
from strata.meta.registry_store import RegistryStore
from strata.registry.service import Registry
from strata.release.policy import ReleaseTagPolicy
from strata.storage.base import BlobStore
from strata.storage.filesystem import FilesystemBlobStore
from strata.storage.private import owner_only_umask, private_dir


def build_store(settings: ServerSettings) -> BlobStore:
    """Files in the data dir, or an S3-compatible bucket (``--blob-store s3://…``; the data dir
    then only holds local spool files and the keys, so several nodes can share the bucket)."""
    if settings.blob_store:
        from strata.storage.s3 import S3BlobStore, S3Location  # aiobotocore only when asked for
        from strata.storage.s3_state import effective_part_size

        return S3BlobStore(S3Location.parse(settings.blob_store), settings.data_dir / "spool",
                           part_size=effective_part_size(settings.s3_part_size,
                                                         settings.limits.max_blob_bytes))
    return FilesystemBlobStore(settings.data_dir, direct_io=settings.direct_io)


def metadata_database(settings: ServerSettings) -> Database:
    """The metadata database: ``--database-url``, else SQLite in the data dir. One per
    process, handed to every store; the caller closes it."""
    return Database(settings.database_url or sqlite_url(settings.data_dir))


def build_registry(settings: ServerSettings, db: Database,
                   store: BlobStore | None = None) -> Registry:
    # A blob asked for is marked used at most this often; a quarter of the grace period leaves
    # a push that found it plenty of time to reference it before a collection could take it.
    meta = RegistryStore(db, touch_interval=min(300.0, settings.gc_grace / 4))
    store = store or build_store(settings)
    return Registry.build(meta, store, limits=settings.limits,
                          garbage=SqlGarbageStore(db), gc_grace_seconds=settings.gc_grace,
                          policy=ReleaseTagPolicy(), decode_in_process=True)


def prepare(settings: ServerSettings) -> None:
    """Before any worker starts, and in the offline commands: from now on this process creates
    owner-only files (umask 077), the data dir exists (0700), the schema is current."""
    owner_only_umask()
    private_dir(settings.data_dir)
    db = metadata_database(settings)
    try:
        db.migrate()
    finally:
        db.close()
