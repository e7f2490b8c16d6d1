"""Blob GETs from local files (``strata.server.blobfile``): both ways a body leaves (read with
the headers up to ``INLINE_MAX``, ``sendfile`` above), ranges on each, the digest as the
validator, a file gone after the lookup, and no descriptor left open."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from strata.server.blobfile import INLINE_MAX

from .helpers import Client, error_of, push_blob
from .oci_fixtures import digest, layer

REPO = "lib/get"
BIG = 1_000_003  # > INLINE_MAX: sendfile (and under aiohttp's client warning for bytes bodies)
SIZES = [0, 1, INLINE_MAX, INLINE_MAX + 1, BIG]


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize("size", SIZES)
async def test_whole_blob(client: Client, size: int) -> None:
    data = layer(f"whole{size}", size).data
    d = await push_blob(client, REPO, data)
    resp = await client.get(f"/v2/{REPO}/blobs/{d}")
    assert resp.status == 200
    assert await resp.read() == data
    assert resp.headers["Content-Length"] == str(size)
    assert resp.headers["Docker-Content-Digest"] == d
    assert resp.headers["ETag"] == f'"{d}"'
    assert resp.headers["Accept-Ranges"] == "bytes"


@pytest.mark.parametrize(("header", "start", "end"), [
    ("bytes=0-9", 0, 10),
    ("bytes=100000-", 100000, BIG),
    ("bytes=-70000", BIG - 70000, BIG),
    ("bytes=5-900000", 5, 900001),
    ("bytes=524288-524288", 524288, 524289),
])
async def test_range_of_a_big_blob(client: Client, header: str, start: int, end: int) -> None:
    data = layer("bigrange", BIG).data
    d = await push_blob(client, REPO, data)
    resp = await client.get(f"/v2/{REPO}/blobs/{d}", headers={"Range": header})
    assert resp.status == 206
    assert await resp.read() == data[start:end]
    assert resp.headers["Content-Range"] == f"bytes {start}-{end - 1}/{len(data)}"
    assert resp.headers["Content-Length"] == str(end - start)


async def test_unsatisfiable_range_of_a_big_blob(client: Client) -> None:
    data = layer("big416", INLINE_MAX * 2).data
    d = await push_blob(client, REPO, data)
    resp = await client.get(f"/v2/{REPO}/blobs/{d}",
                            headers={"Range": f"bytes={len(data)}-"})
    await error_of(resp, 416, "RANGE_INVALID")
    assert resp.headers["Content-Range"] == f"bytes */{len(data)}"


@pytest.mark.parametrize("size", [10, INLINE_MAX * 2])
async def test_if_none_match_the_digest_is_304(client: Client, size: int) -> None:
    data = layer(f"etag{size}", size).data
    d = await push_blob(client, REPO, data)
    for value in (f'"{d}"', f'"sha256:{"0" * 64}", W/"{d}"', "*"):
        resp = await client.get(f"/v2/{REPO}/blobs/{d}", headers={"If-None-Match": value})
        assert resp.status == 304, value
        assert await resp.read() == b""
    other = f'"sha256:{"0" * 64}"'
    resp = await client.get(f"/v2/{REPO}/blobs/{d}", headers={"If-None-Match": other})
    assert resp.status == 200 and await resp.read() == data


@pytest.mark.parametrize("size", [10, INLINE_MAX * 2])
async def test_if_range_with_another_validator_gets_the_whole_blob(client: Client,
                                                                   size: int) -> None:
    data = layer(f"ifrange{size}", size).data
    d = await push_blob(client, REPO, data)
    url = f"/v2/{REPO}/blobs/{d}"
    resp = await client.get(url, headers={"Range": "bytes=2-5", "If-Range": '"other"'})
    assert resp.status == 200 and await resp.read() == data
    resp = await client.get(url, headers={"Range": "bytes=2-5", "If-Range": f'"{d}"'})
    assert resp.status == 206 and await resp.read() == data[2:6]


async def test_file_gone_after_the_lookup_is_blob_unknown(client: Client,
                                                          data_dir: Path) -> None:
    data = layer("gone", INLINE_MAX * 2).data
    d = await push_blob(client, REPO, data)
    hexd = d.split(":", 1)[1]
    (data_dir / "blobs" / "sha256" / hexd[:2] / hexd).unlink()
    await error_of(await client.get(f"/v2/{REPO}/blobs/{d}"), 404, "BLOB_UNKNOWN")


async def test_no_descriptor_left_open(client: Client) -> None:
    small = await push_blob(client, REPO, layer("fd-small", 100).data)
    big_data = layer("fd-big", BIG).data
    big = await push_blob(client, REPO, big_data)
    # warm up (connection pool, reader connections), then count
    for d in (small, big):
        await (await client.get(f"/v2/{REPO}/blobs/{d}")).read()
    before = open_fds()
    for _ in range(20):
        for d in (small, big):
            resp = await client.get(f"/v2/{REPO}/blobs/{d}")
            await resp.read()
            assert resp.status == 200
        # a client that goes away in the middle of a big body
        resp = await client.get(f"/v2/{REPO}/blobs/{big}")
        await resp.content.read(1000)
        resp.close()
    await asyncio.sleep(0.2)
    assert open_fds() <= before + 2  # the client may hold a connection more or less
    assert digest(big_data) == big
