"""S3-compatible blob store (AWS S3, Ceph RGW, MinIO, ``rclone serve s3``): several stateless
``strata serve`` nodes share one bucket.

Layout under ``PREFIX``: committed blobs at ``blobs/<alg>/<2 hex>/<hex>``; an upload session is
``uploads/<id>/owner`` (the repository; its LastModified is the session's start) plus one object
per accepted chunk, ``uploads/<id>/part/<offset, 20 digits>``. S3 cannot append, so a chunk is
spooled to a local file while it streams in (a failed request leaves nothing behind) and sent
as one object once whole; a session continued by another node reads the parts it needs.

``upload_sync`` assembles the parts under the blob's content address before the metadata
transaction (one server-side copy for a one-part upload; otherwise the parts are concatenated
through a local spool file); ``upload_place``, inside the transaction, only confirms the object
is there (re-assembling it in the rare case a collector removed an identical old copy
meanwhile) and leaves the parts to ``upload_abort``. An object under a content address without a
row (a crash in between) is garbage collection's orphan, removed after the grace period.

The async methods use aiobotocore on the event loop; the synchronous ones (called on the
metadata writer's thread) and the assembly (one routine, on a thread from ``upload_sync``) use a
botocore client of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import tempfile
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import botocore.session
from aiobotocore.session import get_session
from botocore.config import Config
from botocore.exceptions import ClientError

from strata.oci.digest import Digest
from strata.storage.private import private_dir

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client as AsyncS3Client

_READ_CHUNK = 1 << 20
_UPLOAD_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_PART = re.compile(r"/part/(\d{20})$")
_MISSING = {"404", "NoSuchKey", "NotFound", "NoSuchUpload"}


@dataclass(frozen=True, slots=True)
class S3Location:
    """Where the blobs live: ``s3://BUCKET/PREFIX?endpoint=URL&region=R``. Credentials come
    from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY unless given."""

    endpoint_url: str | None
    bucket: str
    prefix: str
    region: str = "us-east-1"
    access_key: str | None = None
    secret_key: str | None = None

    @classmethod
    def parse(cls, url: str, *, access_key: str | None = None,
              secret_key: str | None = None) -> S3Location:
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise ValueError(f"not an s3://BUCKET[/PREFIX] URL: {url!r}")
        query = parse_qs(parts.query)
        prefix = parts.path.lstrip("/")
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        return cls(endpoint_url=query.get("endpoint", [None])[0], bucket=parts.netloc,
                   prefix=prefix, region=query.get("region", ["us-east-1"])[0],
                   access_key=access_key or os.environ.get("AWS_ACCESS_KEY_ID"),
                   secret_key=secret_key or os.environ.get("AWS_SECRET_ACCESS_KEY"))

    def client_args(self) -> dict[str, Any]:
        return {
            "region_name": self.region, "endpoint_url": self.endpoint_url,
            "aws_access_key_id": self.access_key, "aws_secret_access_key": self.secret_key,
            # Checksums only where the API requires them: S3-compatible servers differ in
            # what they accept (aws-chunked trailers in particular); digests are ours anyway.
            "config": Config(signature_version="s3v4", s3={"addressing_style": "path"},
                             request_checksum_calculation="when_required",
                             response_checksum_validation="when_required",
                             retries={"max_attempts": 3, "mode": "standard"}),
        }


def _missing(exc: ClientError) -> bool:
    error = exc.response.get("Error", {})
    status = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
    return str(error.get("Code", "")) in _MISSING or status == "404"


class S3BlobStore:
    def __init__(self, location: S3Location, spool_dir: Path) -> None:
        self.location = location
        self._bucket = location.bucket
        self._prefix = location.prefix
        self._spool = spool_dir
        private_dir(self._spool)  # spool files are mkstemp's (0600)
        self._client: AsyncS3Client | None = None
        self._client_cm: Any = None
        self._client_lock: asyncio.Lock | None = None
        self._sync: Any = None

    # -- clients -----------------------------------------------------------------------------
    async def _s3(self) -> AsyncS3Client:
        if self._client is None:
            if self._client_lock is None:
                self._client_lock = asyncio.Lock()
            async with self._client_lock:
                if self._client is None:
                    cm = get_session().create_client("s3", **self.location.client_args())
                    self._client = await cm.__aenter__()
                    self._client_cm = cm
        assert self._client is not None
        return self._client

    def _sync_s3(self) -> Any:
        if self._sync is None:
            self._sync = botocore.session.get_session().create_client(
                "s3", **self.location.client_args())
        return self._sync

    async def close(self) -> None:
        cm, self._client_cm, self._client = self._client_cm, None, None
        if cm is not None:
            await cm.__aexit__(None, None, None)
        if self._sync is not None:
            self._sync.close()
            self._sync = None

    # -- keys --------------------------------------------------------------------------------
    def _blob_key(self, digest: Digest) -> str:
        return f"{self._prefix}blobs/{digest.algorithm}/{digest.encoded[:2]}/{digest.encoded}"

    def _upload_dir(self, upload_id: str) -> str:
        if not _UPLOAD_ID.match(upload_id):
            raise ValueError(f"bad upload id {upload_id!r}")
        return f"{self._prefix}uploads/{upload_id}/"

    def _part_key(self, upload_id: str, offset: int) -> str:
        return f"{self._upload_dir(upload_id)}part/{offset:020d}"

    # -- committed blobs ---------------------------------------------------------------------
    async def read(self, digest: Digest, start: int = 0,
                   end: int | None = None) -> AsyncIterator[bytes]:
        async for chunk in self._get(self._blob_key(digest), start, end):
            yield chunk

    async def _get(self, key: str, start: int = 0,
                   end: int | None = None) -> AsyncIterator[bytes]:
        if end is not None and end <= start:
            # An empty range: S3 cannot express it, but the object must still exist.
            await self._head(key)
            return
        args: dict[str, Any] = {"Bucket": self._bucket, "Key": key}
        if start or end is not None:
            args["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        s3 = await self._s3()
        try:
            resp = await s3.get_object(**args)
        except ClientError as exc:
            if _missing(exc):
                raise FileNotFoundError(key) from None
            if exc.response.get("Error", {}).get("Code") == "InvalidRange":
                await self._head(key)  # a range past the end of an existing object: nothing
                return
            raise
        async with resp["Body"] as body:
            while chunk := await body.read(_READ_CHUNK):
                yield chunk

    async def _head(self, key: str) -> dict[str, Any]:
        s3 = await self._s3()
        try:
            return dict(await s3.head_object(Bucket=self._bucket, Key=key))
        except ClientError as exc:
            if _missing(exc):
                raise FileNotFoundError(key) from None
            raise

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

    async def _list(self, prefix: str) -> AsyncIterator[dict[str, Any]]:
        s3 = await self._s3()
        paginator = s3.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=self._bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                yield dict(obj)

    # -- uploads -----------------------------------------------------------------------------
    async def upload_start(self, upload_id: str, repository: str) -> None:
        s3 = await self._s3()
        await s3.put_object(Bucket=self._bucket, Key=self._upload_dir(upload_id) + "owner",
                            Body=repository.encode())

    async def upload_owner(self, upload_id: str) -> tuple[str, float] | None:
        key = self._upload_dir(upload_id) + "owner"
        s3 = await self._s3()
        try:
            resp = await s3.get_object(Bucket=self._bucket, Key=key)
        except ClientError as exc:
            if _missing(exc):
                return None
            raise
        async with resp["Body"] as body:
            repository = (await body.read()).decode("utf-8", "replace")
        return repository, resp["LastModified"].timestamp()

    async def upload_size(self, upload_id: str) -> int | None:
        # A chunk still streaming is spooled on its node and not seen here.
        if await self.upload_owner(upload_id) is None:
            return None
        return sum(size for _, size, _ in await self._parts(upload_id))

    async def _parts(self, upload_id: str) -> list[tuple[int, int, str]]:
        """(offset, size, key) of the upload's parts, in order."""
        parts = []
        async for obj in self._list(self._upload_dir(upload_id) + "part/"):
            m = _PART.search(obj["Key"])
            if m:
                parts.append((int(m.group(1)), int(obj["Size"]), obj["Key"]))
        return sorted(parts)

    async def upload_write(self, upload_id: str, offset: int,
                           batches: AsyncIterable[Sequence[bytes]]) -> int:
        await self._head(self._upload_dir(upload_id) + "owner")  # FileNotFoundError: cancelled
        s3 = await self._s3()
        # Whatever arrived of an interrupted chunk is dropped with the spool file: the
        # session stays at the offset it had before this request.
        with self._spool_file(upload_id) as spool:
            size = 0
            async for batch in batches:
                for piece in batch:
                    spool.write(piece)
                    size += len(piece)
            await self._truncate(upload_id, offset)
            if size:
                spool.seek(0)
                await s3.put_object(Bucket=self._bucket, Key=self._part_key(upload_id, offset),
                                    Body=spool, ContentLength=size)
        return offset + size

    async def _truncate(self, upload_id: str, offset: int) -> None:
        """Drop everything recorded after ``offset`` (a retried chunk replaces it). The
        registry writes at part boundaries; a part straddling ``offset`` is cut all the same."""
        s3 = await self._s3()
        for start, size, key in await self._parts(upload_id):
            if start >= offset:
                await s3.delete_object(Bucket=self._bucket, Key=key)
            elif start + size > offset:
                head = b"".join([chunk async for chunk in self._get(key, 0, offset - start)])
                await s3.put_object(Bucket=self._bucket, Key=key, Body=head)

    def _spool_file(self, upload_id: str) -> Any:
        """A local temporary file (deleted when closed) for bytes on their way to S3."""
        return tempfile.TemporaryFile(prefix=f"{upload_id}-", dir=self._spool)

    async def upload_read(self, upload_id: str, end: int,
                          start: int = 0) -> AsyncIterator[bytes]:
        for offset, size, key in await self._parts(upload_id):
            lo, hi = max(start, offset), min(end, offset + size)
            if lo >= hi:
                continue
            async for chunk in self._get(key, lo - offset, hi - offset):
                yield chunk

    async def upload_sync(self, upload_id: str, digest: Digest) -> None:
        """Assemble the upload's bytes under the blob's content address (S3 PUTs are durable
        when answered, so there is nothing to flush)."""
        await asyncio.to_thread(self._ensure_blob, upload_id, self._blob_key(digest))

    def upload_place(self, upload_id: str, digest: Digest) -> bool:
        """Confirm the blob object is there (``upload_sync`` put it; if a collector removed an
        identical unreferenced copy since, it is assembled again, inside the transaction); the
        upload's parts are left for ``upload_abort`` (returns False)."""
        self._ensure_blob(upload_id, self._blob_key(digest))
        return False

    def _ensure_blob(self, upload_id: str, target: str) -> None:
        """The object ``target`` from the upload's parts, unless it is there already (the same
        bytes, by their address): one server-side copy for one part, else the parts
        concatenated through a local spool file (rclone stores empty parts for UploadPartCopy)."""
        s3 = self._sync_s3()
        try:
            s3.head_object(Bucket=self._bucket, Key=target)
            return
        except ClientError as exc:
            if not _missing(exc):
                raise
        keys: list[str] = []
        for page in s3.get_paginator("list_objects_v2").paginate(
                Bucket=self._bucket, Prefix=self._upload_dir(upload_id) + "part/"):
            keys += [o["Key"] for o in page.get("Contents", []) if _PART.search(o["Key"])]
        keys.sort()  # zero-padded offsets: text order is byte order
        if len(keys) == 1:
            s3.copy_object(Bucket=self._bucket, Key=target,
                           CopySource={"Bucket": self._bucket, "Key": keys[0]})
            return
        with self._spool_file(upload_id) as spool:
            for key in keys:
                body = s3.get_object(Bucket=self._bucket, Key=key)["Body"]
                while chunk := body.read(_READ_CHUNK):
                    spool.write(chunk)
            size = spool.tell()
            spool.seek(0)
            s3.put_object(Bucket=self._bucket, Key=target, Body=spool, ContentLength=size)

    def persist_placed(self, digests: list[str]) -> None:
        """Nothing to do: an S3 object is durable once its PUT is answered."""

    async def upload_abort(self, upload_id: str) -> None:
        s3 = await self._s3()
        keys = [obj["Key"] async for obj in self._list(self._upload_dir(upload_id))]
        for key in keys:
            with contextlib.suppress(ClientError):
                await s3.delete_object(Bucket=self._bucket, Key=key)

    async def uploads_started_before(self, cutoff: float) -> list[str]:
        base = f"{self._prefix}uploads/"
        stale = []
        async for obj in self._list(base):
            rest = obj["Key"][len(base):]
            upload_id, _, name = rest.partition("/")
            if name == "owner" and obj["LastModified"].timestamp() < cutoff:
                stale.append(upload_id)
        return stale
