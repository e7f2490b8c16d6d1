"""S3-compatible blob store (AWS S3, Ceph RGW, MinIO, ``rclone serve s3``): several stateless
``strata serve`` nodes share one bucket.

Layout under ``PREFIX``: committed blobs at ``blobs/<alg>/<2 hex>/<hex>``; an upload session is
``uploads/<id>/owner`` (the repository; its LastModified is the session's start), one state
object per recorded offset (``state/<offset>``), the pieces of its tail (``piece/…``), and one
multipart upload under ``uploads/<id>/data`` holding its parts (:mod:`.s3_uploads`).

``upload_sync`` puts the blob under its content address before the metadata transaction (a
server-side copy of the completed upload); ``upload_place``, inside the transaction, only
confirms the object is there (copying it again in the rare case a collector removed an
identical old copy meanwhile) and leaves the session's objects to ``upload_abort``. An object
under a content address without a row (a crash in between) is garbage collection's orphan,
removed after the grace period.

Plumbing (clients, object helpers) is in :mod:`.s3_objects`; server-side copies at any size in
:mod:`.s3_copy`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from strata.oci.digest import Digest
from strata.storage.s3_objects import S3Location, guarded
from strata.storage.s3_uploads import DEFAULT_PART_SIZE, S3Uploads

__all__ = ["DEFAULT_PART_SIZE", "S3BlobStore", "S3Location"]

@guarded  # an endpoint that is away: StorageUnavailable (503 with Retry-After)
class S3BlobStore(S3Uploads):
    def __init__(self, location: S3Location, spool_dir: Path, *,
                 part_size: int = DEFAULT_PART_SIZE) -> None:
        super().__init__(location, spool_dir, part_size=part_size)

    # -- committed blobs ---------------------------------------------------------------------
    async def read(self, digest: Digest, start: int = 0,
                   end: int | None = None) -> AsyncIterator[bytes]:
        async for chunk in self._get(self._blob_key(digest), start, end):
            yield chunk

    def remove_now(self, digest: Digest) -> None:
        self._sync_s3().delete_object(Bucket=self._bucket, Key=self._blob_key(digest))

    async def digests(self) -> AsyncIterator[tuple[Digest, int, float]]:
        base = f"{self._prefix}blobs/"
        async for obj in self._list(base):
            parts = obj["Key"][len(base):].split("/")
            if len(parts) != 3:
                continue
            try:
                digest = Digest.parse(f"{parts[0]}:{parts[2]}")
            except Exception:  # a foreign object in the bucket: not ours to report
                continue
            yield digest, int(obj["Size"]), obj["LastModified"].timestamp()

    # -- uploads (the rest is S3Uploads') ------------------------------------------------------
    async def upload_start(self, upload_id: str, repository: str) -> None:
        await self._put(self._upload_dir(upload_id) + "owner", repository.encode())
