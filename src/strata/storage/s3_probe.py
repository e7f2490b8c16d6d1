"""Is this the bucket and prefix the blobs are in? What the offline commands (``scrub``,
``gc``) ask before acting on ``--blob-store s3://BUCKET/PREFIX``, so that a mistyped bucket or
prefix is refused instead of scrubbed as "everything missing" or collected.

One synchronous botocore client, two requests: ``HeadBucket`` (the bucket exists and these
credentials may use it) and ``ListObjectsV2`` of at most one key under ``PREFIX/blobs/``
(whether the prefix holds any blob). Nothing is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import botocore.exceptions
import botocore.session
from botocore.exceptions import ClientError

from strata.storage.s3_objects import S3Location

__all__ = ["S3Probe", "S3ProbeError", "probe"]


class S3ProbeError(Exception):
    """The bucket cannot be used: its message says why, in one line."""


@dataclass(frozen=True)
class S3Probe:
    location: S3Location
    has_blobs: bool  # at least one object under PREFIX/blobs/

    @property
    def where(self) -> str:
        return f"s3://{self.location.bucket}/{self.location.prefix}"


def probe(location: S3Location) -> S3Probe:
    """Check the bucket of ``location`` (raises :class:`S3ProbeError`) and whether its prefix
    holds blobs."""
    where = f"s3://{location.bucket}/{location.prefix}"
    client: Any = botocore.session.get_session().create_client(
        "s3", **location.client_args(10.0))
    try:
        client.head_bucket(Bucket=location.bucket)
        found = client.list_objects_v2(Bucket=location.bucket,
                                       Prefix=f"{location.prefix}blobs/", MaxKeys=1)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
        if code in ("404", "NoSuchBucket", "NotFound") or status == "404":
            raise S3ProbeError(f"no bucket {location.bucket!r} at "
                               f"{location.endpoint_url or 'AWS S3'}") from None
        if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch") \
                or status == "403":
            raise S3ProbeError(f"access to {where} denied ({code or status}): check "
                               "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY") from None
        raise S3ProbeError(f"{where}: {code or status}: {exc}") from None
    except (botocore.exceptions.BotoCoreError, ValueError) as exc:
        raise S3ProbeError(f"cannot reach {location.endpoint_url or 'AWS S3'}: {exc}") from None
    finally:
        client.close()
    return S3Probe(location, bool(found.get("Contents")))
