"""S3 multipart uploads through real ``strata serve`` nodes: two nodes on one PostgreSQL
database and one ``rclone serve s3`` bucket, with 256 KiB parts (``--s3-part-size``) so every
blob here spans several parts. Chunked (across nodes), monolithic and streamed pushes read back
byte for byte; a sha512 digest works too; a cancelled session and one whose digest did not
match leave no multipart upload and no object, and nothing is visible under either digest."""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import botocore.session
import pytest

from support.blobpush import digest_of, finish, patch, pull, push, start
from support.postgres import PostgresCluster
from support.s3 import RcloneS3
from support.server import StrataServer

pytestmark = pytest.mark.server
KiB = 1 << 10
PART = 256 * KiB
_names = itertools.count()


class Nodes:
    def __init__(self, a: StrataServer, b: StrataServer, s3: RcloneS3, prefix: str) -> None:
        self.a, self.b, self.s3, self.prefix = a, b, s3, prefix

    def leftovers(self) -> tuple[list[str], list[str]]:
        """Objects and multipart uploads under ``uploads/`` (none once sessions ended)."""
        client = self._client()
        try:
            objects = [o["Key"] for o in client.list_objects_v2(
                Bucket=self.s3.bucket, Prefix=self.prefix + "uploads/").get("Contents", [])]
            try:
                uploads = [u["Key"] for u in client.list_multipart_uploads(
                    Bucket=self.s3.bucket, Prefix=self.prefix + "uploads/").get("Uploads", [])]
            except client.exceptions.NoSuchUpload:  # rclone's answer for none
                uploads = []
            return objects, uploads
        finally:
            client.close()

    def blob_objects(self) -> list[str]:
        client = self._client()
        try:
            return [o["Key"] for o in client.list_objects_v2(
                Bucket=self.s3.bucket, Prefix=self.prefix + "blobs/").get("Contents", [])]
        finally:
            client.close()

    def _client(self) -> Any:
        return botocore.session.get_session().create_client(
            "s3", region_name=self.s3.region, endpoint_url=self.s3.endpoint_url,
            aws_access_key_id=self.s3.access_key, aws_secret_access_key=self.s3.secret_key)


@pytest.fixture(scope="module")
def nodes(postgres: PostgresCluster, s3_server: RcloneS3,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nodes]:
    n = next(_names)
    prefix = f"mp{n}/"
    args = ["--database-url", postgres.create_database(f"s3mp_{n}"),
            "--blob-store", s3_server.url(prefix), "--s3-part-size", str(PART),
            # 1 GiB fits in 10,000 parts of 256 KiB (64 GiB would raise the part size)
            "--max-blob-size", str(1 << 30)]
    env = {"AWS_ACCESS_KEY_ID": s3_server.access_key,
           "AWS_SECRET_ACCESS_KEY": s3_server.secret_key}
    base = tmp_path_factory.mktemp("s3mp")
    started = [StrataServer(base / f"node{i}", "--workers", "1", "--no-auth", "--gc-interval",
                            "0", *args, env=env).start() for i in range(2)]
    try:
        yield Nodes(started[0], started[1], s3_server, prefix)
    finally:
        for node in started:
            node.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
        yield session


async def test_a_chunked_push_across_nodes(nodes: Nodes, http: aiohttp.ClientSession) -> None:
    data = os.urandom(6 * PART + 4321)
    got, location = await start(http, nodes.a.url, "mp/chunked")
    for n, offset in enumerate(range(0, len(data), 300 * KiB)):
        node = (nodes.b, nodes.a)[n % 2]
        got, location = await patch(http, node.url, location,
                                    data[offset:offset + 300 * KiB], offset)
        assert got.status == 202, (got.status, got.body[:300])
    assert (await finish(http, nodes.b.url, location, digest_of(data))).status == 201
    got = await pull(http, nodes.a.url, "mp/chunked", digest_of(data))
    assert got.status == 200 and got.body == data
    assert nodes.leftovers() == ([], [])


async def test_a_monolithic_push(nodes: Nodes, http: aiohttp.ClientSession) -> None:
    data = os.urandom(4 * PART + 17)
    assert (await push(http, nodes.a.url, "mp/mono", data)).status == 201
    assert (await pull(http, nodes.b.url, "mp/mono", digest_of(data))).body == data
    assert nodes.leftovers() == ([], [])


async def test_a_streamed_push(nodes: Nodes, http: aiohttp.ClientSession) -> None:
    data = os.urandom(5 * PART + 999)
    got, location = await start(http, nodes.a.url, "mp/stream")
    got, location = await patch(http, nodes.a.url, location, data)  # no Content-Range
    assert got.status == 202 and got.headers["Range"] == f"0-{len(data) - 1}"
    assert (await finish(http, nodes.b.url, location, digest_of(data))).status == 201
    assert (await pull(http, nodes.b.url, "mp/stream", digest_of(data))).body == data
    assert nodes.leftovers() == ([], [])


async def test_a_sha512_digest(nodes: Nodes, http: aiohttp.ClientSession) -> None:
    """The running hash is sha256: the bytes are read back once, after the multipart upload
    was completed under its staging key."""
    data = os.urandom(3 * PART + 5)
    digest = "sha512:" + hashlib.sha512(data).hexdigest()
    _, location = await start(http, nodes.a.url, "mp/sha512")
    _, location = await patch(http, nodes.a.url, location, data, 0)
    assert (await finish(http, nodes.b.url, location, digest)).status == 201
    assert (await pull(http, nodes.a.url, "mp/sha512", digest)).body == data
    assert nodes.leftovers() == ([], [])


async def test_a_cancelled_push_leaves_nothing(nodes: Nodes,
                                               http: aiohttp.ClientSession) -> None:
    got, location = await start(http, nodes.a.url, "mp/cancel")
    got, location = await patch(http, nodes.a.url, location, os.urandom(3 * PART), 0)
    assert got.status == 202
    assert nodes.leftovers()[1]  # its multipart upload
    async with http.delete(f"{nodes.b.url}{location}") as resp:
        assert resp.status == 204
    assert nodes.leftovers() == ([], [])


async def test_a_digest_mismatch_makes_nothing_visible(nodes: Nodes,
                                                       http: aiohttp.ClientSession) -> None:
    data = os.urandom(3 * PART + 1)
    wrong = digest_of(data + b"!")
    before = set(nodes.blob_objects())
    got, location = await start(http, nodes.a.url, "mp/wrong")
    got, location = await patch(http, nodes.a.url, location, data, 0)
    got = await finish(http, nodes.b.url, location, wrong)
    assert got.status == 400 and got.code == "DIGEST_INVALID"
    for digest in (wrong, digest_of(data)):
        assert (await pull(http, nodes.a.url, "mp/wrong", digest)).status == 404
    assert set(nodes.blob_objects()) == before
    assert nodes.leftovers() == ([], [])
