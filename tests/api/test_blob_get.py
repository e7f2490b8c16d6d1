"""Blob GETs from local files (``strata.server.blobfile``): every way a body leaves (read with
the headers up to ``INLINE_MAX``; above it copied to a lone reader on this host, else
``sendfile``), ranges on each, the digest as the validator, a file gone after the lookup, and
no descriptor left open."""

from __future__ import annotations

import asyncio
import io
import os
from pathlib import Path

import pytest

from strata.server import blobfile
from strata.server.blobfile import INLINE_MAX, BlobFileResponse, BlobSends

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


@pytest.fixture
def ways(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """How each big body left: "copy" or "sendfile", in the order the sends started."""
    used: list[str] = []
    copy, sendfile = BlobFileResponse._copy, BlobFileResponse._sendfile

    async def spy_copy(self: BlobFileResponse, writer: object) -> None:
        used.append("copy")
        await copy(self, writer)  # type: ignore[arg-type]

    async def spy_sendfile(self: BlobFileResponse, transport: object) -> None:
        used.append("sendfile")
        await sendfile(self, transport)  # type: ignore[arg-type]

    monkeypatch.setattr(BlobFileResponse, "_copy", spy_copy)
    monkeypatch.setattr(BlobFileResponse, "_sendfile", spy_sendfile)
    return used


async def test_a_lone_local_reader_gets_a_copy(client: Client, ways: list[str]) -> None:
    data = layer("lone", BIG).data
    d = await push_blob(client, REPO, data)
    resp = await client.get(f"/v2/{REPO}/blobs/{d}")
    assert resp.status == 200 and await resp.read() == data
    resp = await client.get(f"/v2/{REPO}/blobs/{d}", headers={"Range": "bytes=7-600006"})
    assert resp.status == 206 and await resp.read() == data[7:600007]
    assert ways == ["copy", "copy"]


async def test_a_second_big_send_in_flight_goes_by_sendfile(client: Client,
                                                            ways: list[str]) -> None:
    # The first body is left unread, so its send is still in flight (the socket's buffers
    # full) when the second starts: the worker's CPU is then what runs out, and sendfile
    # costs it less. Both bodies arrive whole, a range too.
    data = layer("busy", 32 * 1024 * 1024 + 5).data
    d = digest(data)
    resp = await client.post(f"/v2/{REPO}/blobs/uploads/")
    resp = await client.put(resp.headers["Location"], params={"digest": d},
                            data=io.BytesIO(data))  # (a bytes body this big: a warning)
    assert resp.status == 201
    first = await client.get(f"/v2/{REPO}/blobs/{d}")
    assert first.status == 200
    second = await client.get(f"/v2/{REPO}/blobs/{d}", headers={"Range": "bytes=3-2000002"})
    assert second.status == 206 and await second.read() == data[3:2000003]
    assert await first.read() == data
    assert ways == ["copy", "sendfile"]
    third = await client.get(f"/v2/{REPO}/blobs/{d}")  # alone again
    assert await third.read() == data and ways[-1] == "copy"


class _Transport:
    def __init__(self, peer: object) -> None:
        self.peer = peer

    def get_extra_info(self, name: str) -> object:
        return self.peer if name == "peername" else None


class _Request:
    def __init__(self, peer: object) -> None:
        self.transport = _Transport(peer)


@pytest.mark.parametrize(("peer", "copied"), [
    (("127.0.0.1", 5000), True),
    (("127.8.9.10", 5000), True),
    (("::1", 5000, 0, 0), True),
    (("::ffff:127.0.0.1", 5000, 0, 0), True),
    (("10.1.2.3", 5000), False),
    (("2001:db8::7", 5000, 0, 0), False),
    (("::ffff:10.1.2.3", 5000, 0, 0), False),
    (None, False),
    ("/run/strata.sock", False),
])
def test_only_a_reader_on_this_host_is_copied_to(peer: object, copied: bool) -> None:
    # Over a network the reader's copy does not read the server's pages: sendfile only
    # saves the server's CPU there.
    sends = BlobSends()
    sends.active = 1
    assert sends.copy_to(_Request(peer)) is copied  # type: ignore[arg-type]
    sends.active = 2
    assert sends.copy_to(_Request(peer)) is False  # type: ignore[arg-type]
    assert blobfile.COPY_PIECE % 4096 == 0
