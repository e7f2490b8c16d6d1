"""The S3 plumbing the blob store is built on: where the bucket is (:class:`S3Location`), the
clients, and small object helpers (get a range, head, list, put bytes).

The async methods use aiobotocore on the event loop; the synchronous ones (called on the
metadata writer's thread, or on a thread for server-side copies) use a botocore client of
their own.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
import re
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import botocore.exceptions
import botocore.session
from aiobotocore.session import get_session
from botocore.config import Config
from botocore.exceptions import ClientError

from strata.oci.digest import Digest
from strata.storage.base import StorageUnavailable
from strata.storage.private import private_dir

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client as AsyncS3Client

READ_CHUNK = 1 << 20
_UPLOAD_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
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

    def client_args(self, read_timeout: float = 60.0) -> dict[str, Any]:
        return {
            "region_name": self.region, "endpoint_url": self.endpoint_url,
            "aws_access_key_id": self.access_key, "aws_secret_access_key": self.secret_key,
            # Checksums only where the API requires them: S3-compatible servers differ in
            # what they accept (aws-chunked trailers in particular); digests are ours anyway.
            "config": Config(signature_version="s3v4", s3={"addressing_style": "path"},
                             request_checksum_calculation="when_required",
                             response_checksum_validation="when_required",
                             retries={"max_attempts": 3, "mode": "standard"},
                             read_timeout=read_timeout),
        }


def missing(exc: ClientError) -> bool:
    error = exc.response.get("Error", {})
    status = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
    return str(error.get("Code", "")) in _MISSING or status == "404"


class S3Objects:
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
        # Server-side copies and completions of big objects answer when done: minutes for
        # many GiB on some servers (rclone's), so this client waits longer for an answer.
        if self._sync is None:
            self._sync = botocore.session.get_session().create_client(
                "s3", **self.location.client_args(read_timeout=3600.0))
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

    # -- objects -----------------------------------------------------------------------------
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
            if missing(exc):
                raise FileNotFoundError(key) from None
            if exc.response.get("Error", {}).get("Code") == "InvalidRange":
                await self._head(key)  # a range past the end of an existing object: nothing
                return
            raise
        async with resp["Body"] as body:
            while chunk := await body.read(READ_CHUNK):
                yield chunk

    async def _get_bytes(self, key: str) -> bytes | None:
        """A small object's bytes, or None when there is none."""
        try:
            return b"".join([chunk async for chunk in self._get(key)])
        except FileNotFoundError:
            return None

    async def _head(self, key: str) -> dict[str, Any]:
        s3 = await self._s3()
        try:
            return dict(await s3.head_object(Bucket=self._bucket, Key=key))
        except ClientError as exc:
            if missing(exc):
                raise FileNotFoundError(key) from None
            raise

    async def _exists(self, key: str) -> bool:
        try:
            await self._head(key)
        except FileNotFoundError:
            return False
        return True

    async def _list(self, prefix: str) -> AsyncIterator[dict[str, Any]]:
        s3 = await self._s3()
        paginator = s3.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=self._bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                yield dict(obj)

    async def _put(self, key: str, body: bytes | IO[bytes], size: int | None = None) -> None:
        s3 = await self._s3()
        if isinstance(body, bytes):
            await s3.put_object(Bucket=self._bucket, Key=key, Body=body)
        else:
            await s3.put_object(Bucket=self._bucket, Key=key, Body=body,
                                ContentLength=size or 0)

    def _spool_file(self, name: str) -> IO[bytes]:
        """A local temporary file (deleted when closed) for bytes on their way to S3."""
        return tempfile.TemporaryFile(prefix=f"{name}-", dir=self._spool)


# -- an endpoint that is away -----------------------------------------------------------------
_GUARDED = ("read", "remove_now", "digests", "upload_start", "upload_owner", "upload_size",
            "upload_write", "upload_read", "upload_sync", "upload_place", "upload_abort",
            "uploads_started_before")
_AWAY_STATUS = {"502", "503", "504"}
C = TypeVar("C", bound=type)


def _away(exc: BaseException) -> StorageUnavailable | None:
    """``exc`` as StorageUnavailable when it says the endpoint is away (connection refused,
    closed or timed out after botocore's retries, or a 5xx "come back later"), else None."""
    if isinstance(exc, botocore.exceptions.HTTPClientError | botocore.exceptions.ConnectionError):
        return StorageUnavailable(f"S3 endpoint: {exc}")
    if isinstance(exc, ClientError):
        status = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
        if status in _AWAY_STATUS:
            return StorageUnavailable(f"S3 endpoint answered {status}: {exc}")
    return None


def guarded(cls: C) -> C:
    """Make every BlobStore method of ``cls`` raise StorageUnavailable (the server's 503 with
    Retry-After) instead of botocore's errors when the S3 endpoint is away."""
    for name in _GUARDED:
        fn = getattr(cls, name)
        if inspect.isasyncgenfunction(fn):
            setattr(cls, name, _guard_agen(fn))
        elif inspect.iscoroutinefunction(fn):
            setattr(cls, name, _guard_coro(fn))
        else:
            setattr(cls, name, _guard_sync(fn))
    return cls


def _guard_agen(fn: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        try:
            async for item in fn(*args, **kwargs):
                yield item
        except Exception as exc:
            away = _away(exc)
            if away is None:
                raise
            raise away from exc
    return wrapper


def _guard_coro(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return await fn(*args, **kwargs)
        except Exception as exc:
            away = _away(exc)
            if away is None:
                raise
            raise away from exc
    return wrapper


def _guard_sync(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            away = _away(exc)
            if away is None:
                raise
            raise away from exc
    return wrapper
