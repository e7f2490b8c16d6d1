"""Server-side copies in an S3 bucket (no byte goes through a node), at any size.

``CopyObject`` copies up to 5 GiB on AWS S3; a larger object is copied as a multipart upload
whose parts are ``UploadPartCopy`` ranges of the source. Not every S3-compatible server has a
working ``UploadPartCopy``: ``rclone serve s3`` answers it but stores an empty part. Whether it
works is found out once per store (a tiny probe object copied that way, its size checked) and
remembered; where it does not, objects of any size are copied with ``CopyObject`` (rclone's has
no size limit).

The calls run on a botocore (synchronous) client: a copy happens on a thread before the
metadata transaction, or inside it when a collector removed the blob meanwhile.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from typing import Any

from botocore.exceptions import ClientError

COPY_OBJECT_LIMIT = 5 << 30  # AWS S3's largest CopyObject
COPY_PART_SIZE = 1 << 30  # ranges of a multipart copy (AWS allows up to 5 GiB each)
_PROBE = b"strata UploadPartCopy probe\n"


class PartCopyUnsupported(Exception):
    """The server's UploadPartCopy answer has no ETag (rclone's)."""


class S3Copier:
    def __init__(self, client: Any, bucket: str, probe_prefix: str, *,
                 copy_object_limit: int = COPY_OBJECT_LIMIT,
                 copy_part_size: int = COPY_PART_SIZE) -> None:
        self._s3 = client
        self._bucket = bucket
        self._probe_prefix = probe_prefix
        self.copy_object_limit = copy_object_limit
        self.copy_part_size = copy_part_size
        self._part_copy: bool | None = None
        self._lock = threading.Lock()

    def copy(self, source: str, target: str, size: int) -> None:
        """Copy the object ``source`` (``size`` bytes) to ``target``, server-side."""
        if size <= self.copy_object_limit or not self.part_copy_works():
            self._s3.copy_object(Bucket=self._bucket, Key=target,
                                 CopySource={"Bucket": self._bucket, "Key": source})
            return
        self._multipart_copy(source, target, size)

    def part_copy_works(self) -> bool:
        """Whether this server's ``UploadPartCopy`` copies bytes (asked once)."""
        with self._lock:
            if self._part_copy is None:
                self._part_copy = self._probe()
            return self._part_copy

    def _probe(self) -> bool:
        name = uuid.uuid4().hex
        source = f"{self._probe_prefix}probe/{name}.src"
        target = f"{self._probe_prefix}probe/{name}.dst"
        self._s3.put_object(Bucket=self._bucket, Key=source, Body=_PROBE)
        try:
            self._multipart_copy(source, target, len(_PROBE))
            head = self._s3.head_object(Bucket=self._bucket, Key=target)
            body = self._s3.get_object(Bucket=self._bucket, Key=target)["Body"].read()
            return int(head["ContentLength"]) == len(_PROBE) and body == _PROBE
        except (ClientError, PartCopyUnsupported):
            return False
        finally:
            for key in (source, target):
                with contextlib.suppress(ClientError):
                    self._s3.delete_object(Bucket=self._bucket, Key=key)

    def _multipart_copy(self, source: str, target: str, size: int) -> None:
        mpu = self._s3.create_multipart_upload(Bucket=self._bucket, Key=target)["UploadId"]
        try:
            parts = []
            for number, start in enumerate(range(0, size, self.copy_part_size), 1):
                end = min(size, start + self.copy_part_size) - 1
                result = self._s3.upload_part_copy(
                    Bucket=self._bucket, Key=target, UploadId=mpu, PartNumber=number,
                    CopySource={"Bucket": self._bucket, "Key": source},
                    CopySourceRange=f"bytes={start}-{end}")
                etag = result.get("CopyPartResult", {}).get("ETag")
                if not etag:
                    raise PartCopyUnsupported(f"UploadPartCopy of {source} gave no ETag")
                parts.append({"PartNumber": number, "ETag": etag})
            self._s3.complete_multipart_upload(Bucket=self._bucket, Key=target, UploadId=mpu,
                                               MultipartUpload={"Parts": parts})
        except BaseException:
            with contextlib.suppress(ClientError):
                self._s3.abort_multipart_upload(Bucket=self._bucket, Key=target, UploadId=mpu)
            raise
