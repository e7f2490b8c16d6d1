"""The data disk fills during a push: a 64 MiB tmpfs the test mounts is the data dir (SQLite and
blob files). A push that runs out of space gets 507 (code UNAVAILABLE, "insufficient storage",
``Retry-After``) at once — no hang, no 500 — nothing of it is visible, ``/healthz`` answers 503
with "low disk"; once space is freed the same push succeeds and the health check is green.

Needs root (mount); fails in CI without it, skips elsewhere."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from support.blobpush import digest_of, pull, push
from support.server import StrataServer
from support.tmpfs import mounted_tmpfs

pytestmark = pytest.mark.server
REPO = "faults/disk"
MiB = 1 << 20


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with mounted_tmpfs(tmp_path / "disk", "size=64m,mode=0700",
                       "run the fault tests as root") as mount:
        yield mount


async def test_the_data_disk_fills_during_a_push(small_disk: Path, tmp_path: Path) -> None:
    node = StrataServer(tmp_path / "node", "--no-auth", "--workers", "1", "--gc-interval", "0")
    node.data_dir = small_disk / "data"
    node.start()
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
            small = os.urandom(100_000)
            assert (await push(http, node.url, REPO, small)).status == 201
            async with http.get(f"{node.url}/healthz") as resp:
                assert resp.status == 200
            # Leave about 6 MiB free, then push 12 MiB in 1 MiB chunks.
            filler = small_disk / "filler"
            free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
            with filler.open("wb") as f:
                f.write(b"\0" * (free - 6 * MiB))
            big = os.urandom(12 * MiB)
            began = time.monotonic()
            got = await push(http, node.url, REPO, big, chunk=MiB)
            assert time.monotonic() - began < 30
            assert got.status == 507, (got.status, got.body[:300])
            assert got.code == "UNAVAILABLE" and b"insufficient storage" in got.body
            assert int(got.headers["Retry-After"]) > 0
            # Nothing of it is visible; the small blob still is.
            assert (await pull(http, node.url, REPO, digest_of(big))).status == 404
            assert (await pull(http, node.url, REPO, digest_of(small))).body == small
            # The session keeps the chunks it recorded: the disk stays (nearly) full.
            async with http.get(f"{node.url}/healthz") as resp:
                body = await resp.json()
                assert resp.status == 503 and body["reason"].startswith("low disk"), \
                    (body, os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize)

            filler.unlink()  # space freed: the same push goes through
            assert (await push(http, node.url, REPO, big, chunk=MiB)).status == 201
            assert (await pull(http, node.url, REPO, digest_of(big))).body == big
            async with http.get(f"{node.url}/healthz") as resp:
                assert resp.status == 200, await resp.text()
    finally:
        node.stop()
