"""S3 multipart uploads (``strata.storage.s3_uploads``) on ``rclone serve s3``, with a small
part size so a few hundred KiB make several parts.

What the registry relies on: whatever the chunk sizes, the parts of one multipart upload hold
the bytes (no per-chunk objects assembled through a node); a session continues on another
store instance (another node) from its recorded offset; a request that failed, or was retried
from the recorded offset after some of its parts were sent, changes nothing; abort leaves no
multipart upload and no object; a blob above the CopyObject limit is copied with the detected
method (rclone's UploadPartCopy stores an empty part, so CopyObject).
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from strata.meta.registry_store import RegistryStore
from strata.oci.names import RepositoryName
from strata.registry.limits import Limits
from strata.registry.uploads import UploadService
from strata.storage.s3 import S3BlobStore, S3Location
from strata.storage.s3_copy import PartCopyUnsupported
from support.s3 import RcloneS3

from .test_blobstore import batches, collect, digest_of, failing, new_id, place

KiB = 1 << 10
PART = 256 * KiB
_prefixes = itertools.count()


def _store(server: RcloneS3, prefix: str, spool: Path) -> S3BlobStore:
    location = dataclasses.replace(S3Location.parse(server.url(prefix)),
                                   access_key=server.access_key, secret_key=server.secret_key)
    return S3BlobStore(location, spool, part_size=PART)


@pytest.fixture
async def nodes(s3_server: RcloneS3, tmp_path: Path) -> AsyncIterator[tuple[S3BlobStore, ...]]:
    """Two store instances on one bucket prefix (two nodes)."""
    prefix = f"mp{next(_prefixes)}/"
    stores = (_store(s3_server, prefix, tmp_path / "a"), _store(s3_server, prefix, tmp_path / "b"))
    try:
        yield stores
    finally:
        for store in stores:
            await store.close()


def _uploads(store: S3BlobStore, prefix: str = "") -> list[dict[str, Any]]:
    s3 = store._sync_s3()
    try:
        return list(s3.list_multipart_uploads(Bucket=store.location.bucket,
                                              Prefix=store.location.prefix + prefix)
                    .get("Uploads", []))
    except s3.exceptions.NoSuchUpload:  # rclone's answer for none
        return []


def _keys(store: S3BlobStore, prefix: str) -> list[str]:
    s3 = store._sync_s3()
    page = s3.list_objects_v2(Bucket=store.location.bucket,
                              Prefix=store.location.prefix + prefix)
    return [obj["Key"] for obj in page.get("Contents", [])]


async def test_odd_chunks_become_the_parts_of_one_multipart_upload(
        nodes: tuple[S3BlobStore, ...]) -> None:
    store = nodes[0]
    data = os.urandom(5 * PART + 12_345)
    cuts = [0, 100 * KiB, 130 * KiB, 900 * KiB, 901 * KiB, len(data)]
    upload_id = new_id()
    await store.upload_start(upload_id, "lib/x")
    for lo, hi in itertools.pairwise(cuts):
        assert await store.upload_write(upload_id, lo, batches(data[lo:hi])) == hi
    uploads = _uploads(store, f"uploads/{upload_id}/")
    assert len(uploads) == 1  # one multipart upload, whatever the chunks
    parts = store._sync_s3().list_parts(Bucket=store.location.bucket, Key=uploads[0]["Key"],
                                        UploadId=uploads[0]["UploadId"])["Parts"]
    assert [p["Size"] for p in parts] == [PART] * 5  # the tail (12,345 bytes) is not a part yet
    # Outside the parts only small objects: one state per offset, and tail pieces (each less
    # than a part), those gathered into parts deleted by the next request.
    s3 = store._sync_s3()
    sizes = [s3.head_object(Bucket=store.location.bucket, Key=key)["ContentLength"]
             for key in _keys(store, f"uploads/{upload_id}/")]
    assert max(sizes) < PART
    assert await store.upload_write(upload_id, len(data), batches(b"")) == len(data)
    pieces = _keys(store, f"uploads/{upload_id}/piece/")
    assert len(pieces) == 1  # the tail's
    digest = digest_of(data)
    assert not await place(store, upload_id, digest, len(data))
    assert await collect(store.read(digest)) == data
    assert _uploads(store) == [] and _keys(store, "uploads/") == []


async def test_a_session_moves_between_nodes_chunk_by_chunk(
        nodes: tuple[S3BlobStore, ...]) -> None:
    data = os.urandom(3 * PART + 777)
    step = 200 * KiB
    upload_id = new_id()
    await nodes[0].upload_start(upload_id, "lib/x")
    for n, lo in enumerate(range(0, len(data), step)):
        hi = min(len(data), lo + step)
        assert await nodes[n % 2].upload_write(upload_id, lo, batches(data[lo:hi])) == hi
    digest = digest_of(data)
    await place(nodes[1], upload_id, digest, len(data))
    assert await collect(nodes[0].read(digest)) == data


async def test_a_request_cut_after_sending_parts_is_retried_on_the_other_node(
        nodes: tuple[S3BlobStore, ...]) -> None:
    first = os.urandom(PART // 2)
    chunk = os.urandom(3 * PART)
    upload_id = new_id()
    await nodes[0].upload_start(upload_id, "lib/x")
    assert await nodes[0].upload_write(upload_id, 0, batches(first)) == len(first)
    with pytest.raises(Exception, match="connection lost"):  # two parts sent, then cut
        await nodes[0].upload_write(upload_id, len(first), failing(chunk[:2 * PART]))
    # The session is where it was recorded; the client sends the chunk again elsewhere.
    assert await collect(nodes[1].upload_read(upload_id, len(first))) == first
    size = await nodes[1].upload_write(upload_id, len(first), batches(chunk))
    assert size == len(first) + len(chunk)
    digest = digest_of(first + chunk)
    await place(nodes[1], upload_id, digest, size)
    assert await collect(nodes[0].read(digest)) == first + chunk


async def test_bytes_in_parts_read_back_once_staged(nodes: tuple[S3BlobStore, ...]) -> None:
    """A digest other than the running sha256 (sha512) needs the bytes: reading a range in
    the parts completes the upload under its staging key first."""
    data = os.urandom(2 * PART + 99)
    upload_id = new_id()
    await nodes[0].upload_start(upload_id, "lib/x")
    await nodes[0].upload_write(upload_id, 0, batches(data))
    assert await collect(nodes[1].upload_read(upload_id, len(data))) == data
    assert await collect(nodes[1].upload_read(upload_id, PART + 10, PART - 10)) \
        == data[PART - 10:PART + 10]
    digest = digest_of(data)
    await place(nodes[0], upload_id, digest, len(data))
    assert await collect(nodes[1].read(digest)) == data


async def test_abort_leaves_no_multipart_upload_and_no_object(
        nodes: tuple[S3BlobStore, ...]) -> None:
    store = nodes[0]
    upload_id = new_id()
    await store.upload_start(upload_id, "lib/x")
    await store.upload_write(upload_id, 0, batches(os.urandom(2 * PART + 5)))
    assert len(_uploads(store, f"uploads/{upload_id}/")) == 1
    await nodes[1].upload_abort(upload_id)
    assert _uploads(store, f"uploads/{upload_id}/") == []
    assert _keys(store, f"uploads/{upload_id}/") == []
    assert await store.upload_size(upload_id) is None


async def test_expiry_finds_a_multipart_upload_whose_session_is_gone(
        nodes: tuple[S3BlobStore, ...]) -> None:
    store = nodes[0]
    upload_id = new_id()
    await store.upload_start(upload_id, "lib/x")
    await store.upload_write(upload_id, 0, batches(os.urandom(PART + 1)))
    s3 = store._sync_s3()
    s3.delete_object(Bucket=store.location.bucket,  # an abort cut short: the owner went first
                     Key=f"{store.location.prefix}uploads/{upload_id}/owner")
    assert upload_id in await store.uploads_started_before(time.time() + 60)
    await store.upload_abort(upload_id)
    assert _uploads(store, f"uploads/{upload_id}/") == []


async def test_a_blob_above_the_copy_object_limit_is_copied_by_the_detected_method(
        nodes: tuple[S3BlobStore, ...]) -> None:
    store = nodes[0]
    # rclone serve s3 answers UploadPartCopy with an empty part: detected, CopyObject used.
    assert store.copier.part_copy_works() is False
    store.copier.copy_object_limit = PART  # as if this blob were above 5 GiB
    store.copier.copy_part_size = PART
    data = os.urandom(3 * PART + 1)
    upload_id = new_id()
    await store.upload_start(upload_id, "lib/x")
    await store.upload_write(upload_id, 0, batches(data))
    digest = digest_of(data)
    await place(store, upload_id, digest, len(data))
    assert await collect(nodes[1].read(digest)) == data


async def test_the_multipart_copy_itself(nodes: tuple[S3BlobStore, ...]) -> None:
    """The UploadPartCopy route, as a server with a working UploadPartCopy takes it; on
    rclone it fails (no ETag, an empty part), which is what the probe detects."""
    store = nodes[0]
    s3 = store._sync_s3()
    bucket, prefix = store.location.bucket, store.location.prefix
    s3.put_object(Bucket=bucket, Key=prefix + "src", Body=b"x" * 1000)
    store.copier.copy_part_size = 400
    try:
        store.copier._multipart_copy(prefix + "src", prefix + "dst", 1000)
    except PartCopyUnsupported:  # rclone: no ETag for the copied part (and it is empty)
        assert store.copier.part_copy_works() is False
        return
    body = s3.get_object(Bucket=bucket, Key=prefix + "dst")["Body"].read()
    assert (body == b"x" * 1000) is store.copier.part_copy_works()


async def test_expiry_aborts_the_multipart_upload_of_a_stale_session(
        nodes: tuple[S3BlobStore, ...], meta: RegistryStore) -> None:
    store = nodes[0]
    uploads = UploadService(meta, store, Limits(upload_ttl_seconds=3600))
    repo = RepositoryName.parse("lib/stale")
    rec = await uploads.start(repo)
    await uploads.append(repo, rec.id, _once(os.urandom(2 * PART + 1)))
    assert len(_uploads(store, f"uploads/{rec.id}/")) == 1
    uploads._clock = lambda: time.time() + 7200  # past the TTL
    assert await uploads.expire() == 1
    assert _uploads(store, f"uploads/{rec.id}/") == []
    assert _keys(store, f"uploads/{rec.id}/") == []
    assert await meta.get_upload(rec.id) is None


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data
