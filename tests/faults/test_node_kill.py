"""``kill -9`` of a node during a multi-node chunked upload: two ``strata serve`` nodes on one
PostgreSQL database and one S3 bucket (parts of 256 KiB, so a chunk spans several multipart
parts). Node A dies while a chunk streams into it, after it sent some of that chunk's parts; the
client asks node B where the session stands, sends the chunk again there, finishes on B, and
the blob reads back byte for byte from B; no multipart upload or session object is left."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import botocore.session
import pytest

from support.blobpush import digest_of, finish, patch, pull, start
from support.s3 import RcloneS3
from support.server import StrataServer

pytestmark = pytest.mark.server
REPO = "faults/kill"
KiB = 1 << 10
PART = 256 * KiB


def _leftovers(s3: RcloneS3, prefix: str) -> tuple[list[str], list[str]]:
    client = botocore.session.get_session().create_client(
        "s3", region_name=s3.region, endpoint_url=s3.endpoint_url,
        aws_access_key_id=s3.access_key, aws_secret_access_key=s3.secret_key)
    try:
        objects = [o["Key"] for o in client.list_objects_v2(
            Bucket=s3.bucket, Prefix=prefix + "uploads/").get("Contents", [])]
        try:
            uploads = [u["Key"] for u in client.list_multipart_uploads(
                Bucket=s3.bucket, Prefix=prefix + "uploads/").get("Uploads", [])]
        except client.exceptions.NoSuchUpload:  # rclone's answer for none
            uploads = []
        return objects, uploads
    finally:
        client.close()


def _parts_sent(s3: RcloneS3, prefix: str) -> int:
    client = botocore.session.get_session().create_client(
        "s3", region_name=s3.region, endpoint_url=s3.endpoint_url,
        aws_access_key_id=s3.access_key, aws_secret_access_key=s3.secret_key)
    try:
        (upload,) = client.list_multipart_uploads(
            Bucket=s3.bucket, Prefix=prefix + "uploads/")["Uploads"]
        return len(client.list_parts(Bucket=s3.bucket, Key=upload["Key"],
                                     UploadId=upload["UploadId"]).get("Parts", []))
    finally:
        client.close()


async def test_a_node_killed_mid_chunk_the_client_resumes_on_the_other(
        tmp_path: Path, scale_out_stores: tuple[list[str], dict[str, str]],
        s3_server: RcloneS3) -> None:
    args, env = scale_out_stores
    prefix = args[args.index("--blob-store") + 1].split("/", 3)[3].split("?")[0]
    a, b = (StrataServer(tmp_path / f"node{i}", "--workers", "1", "--no-auth",
                         "--gc-interval", "0", "--s3-part-size", str(PART),
                         "--max-blob-size", str(1 << 30), *args,
                         env=env).start() for i in range(2))
    try:
        first, second, third = os.urandom(300 * KiB), os.urandom(12 * PART), os.urandom(123_457)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
            got, location = await start(http, a.url, REPO)
            assert got.status == 202
            got, location = await patch(http, a.url, location, first, 0)
            assert got.status == 202

            sent = asyncio.Event()

            async def slow_chunk() -> AsyncIterator[bytes]:
                # Eight parts' worth arrives (the server hands the store 1 MiB batches);
                # then the node dies under the request.
                for i in range(0, 8 * PART, 64 * KiB):
                    yield second[i:i + 64 * KiB]
                sent.set()
                await asyncio.sleep(30)
                yield second[8 * PART:]

            headers = {"Content-Type": "application/octet-stream",
                       "Content-Range": f"{len(first)}-{len(first) + len(second) - 1}"}
            request = asyncio.create_task(http.patch(f"{a.url}{location}",
                                                     data=slow_chunk(), headers=headers))
            await asyncio.wait_for(sent.wait(), 30)
            await asyncio.sleep(1.0)  # let node A send the parts it has
            assert a.pid is not None
            os.killpg(a.pid, signal.SIGKILL)
            with pytest.raises(aiohttp.ClientError):
                resp = await asyncio.wait_for(request, 30)
                resp.release()

            # Node A had sent parts of that chunk (beyond part 1, the first chunk's).
            assert _parts_sent(s3_server, prefix) >= 2
            # Node B knows the recorded offset: the chunk node A was taking is not in it.
            async with http.get(f"{b.url}{location}") as resp:
                assert resp.status == 204
                assert resp.headers["Range"] == f"0-{len(first) - 1}"
            got, location = await patch(http, b.url, location, second, len(first))
            assert got.status == 202, (got.status, got.body[:300])
            data = first + second + third
            got = await finish(http, b.url, location, digest_of(data), third)
            assert got.status == 201, (got.status, got.body[:300])
            got = await pull(http, b.url, REPO, digest_of(data))
            assert got.status == 200 and got.body == data
        assert _leftovers(s3_server, prefix) == ([], [])
    finally:
        for node in (a, b):
            node.stop()
