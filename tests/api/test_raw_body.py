"""Blob bodies of 1 MiB and more taken from the connection (``strata.server.rawbody``) and
pumped through threads (``strata.registry.pump``), over real loopback sockets.

Such a body is read straight from the socket: the response says ``Connection: close`` and
the connection ends after it; a broken, silent or oversized body leaves the upload at its
offset. Bodies under 1 MiB, or sent chunked, stay on the event loop (the connection is kept).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import io
import itertools
import json
import logging
import os
import random
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient
from multidict import CIMultiDict

from strata.meta.connection import create_engine, sqlite_url
from strata.meta.database import Database
from strata.meta.registry_store import RegistryStore
from strata.registry.limits import Limits
from strata.registry.service import Registry
from strata.server.app import create_app
from strata.server.gate import UPLOAD_GATE
from strata.server.rawbody import TAKE_FROM
from strata.storage import direct, filesystem
from strata.storage.filesystem import FilesystemBlobStore

from .helpers import error_of, start_upload
from .oci_fixtures import digest

Client = TestClient[web.Request, web.Application]
ClientFactory = Callable[..., Awaitable[Client]]
AppFactory = Callable[..., web.Application]

MIB = 1 << 20
REPO = "raw/body"
OCTET = {"Content-Type": "application/octet-stream"}


def blob(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def payload(data: bytes) -> io.BytesIO:
    """A body the client sends with its Content-Length (raw bytes of 1 MiB and more make
    aiohttp warn)."""
    return io.BytesIO(data)


def closes(resp: ClientResponse) -> bool:
    return resp.headers.get("Connection", "").lower() == "close"


async def assert_blob(client: Client, data: bytes) -> None:
    d = digest(data)
    resp = await client.get(f"/v2/{REPO}/blobs/{d}")
    assert resp.status == 200, await resp.text()
    assert resp.headers["Docker-Content-Digest"] == d
    assert await resp.read() == data


async def assert_no_blob(client: Client, d: str) -> None:
    await error_of(await client.get(f"/v2/{REPO}/blobs/{d}"), 404, "BLOB_UNKNOWN")


async def status_range(client: Client, location: str) -> str:
    resp = await client.get(location)
    assert resp.status == 204, await resp.text()
    return resp.headers["Range"]


async def patch(client: Client, location: str, data: bytes, offset: int) -> ClientResponse:
    return await client.patch(location, data=payload(data), headers={
        **OCTET, "Content-Range": f"{offset}-{offset + len(data) - 1}"})


def uploads_left(data_dir: Path) -> list[str]:
    return [p.name for p in (data_dir / "uploads").iterdir() if not p.name.startswith(".")]


async def settled(client: Client, busy: bool = False) -> None:
    """Wait until an upload request is running (``busy``) or none is."""
    gate = client.app[UPLOAD_GATE]
    for _ in range(1000):
        if bool(gate.active) == busy:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"uploads in progress: {gate.active}")


# -- a raw connection: bytes as written, read until the server closes ----------------------
class Raw:
    """A blocking socket to the test server, used from threads: a body can be sent while the
    response is read (a server refusing a body answers before it has it all)."""

    def __init__(self, client: Client) -> None:
        assert client.port is not None
        self.sock = socket.create_connection(("127.0.0.1", client.port))

    async def send(self, data: bytes) -> None:
        await asyncio.to_thread(self.sock.sendall, data)

    async def send_quietly(self, data: bytes) -> None:
        """Send what the server may stop reading (it closes after refusing the body)."""
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            await self.send(data)

    async def until_closed(self) -> bytes:
        """Everything the server sends until it closes the connection (20 s at most)."""
        def run() -> bytes:
            self.sock.settimeout(20.0)
            out = bytearray()
            with contextlib.suppress(ConnectionResetError):  # closed with our bytes unread
                while chunk := self.sock.recv(1 << 16):
                    out += chunk
            return bytes(out)
        return await asyncio.to_thread(run)

    def close(self) -> None:
        self.sock.close()


@contextlib.asynccontextmanager
async def raw(client: Client) -> AsyncIterator[Raw]:
    conn = Raw(client)
    try:
        yield conn
    finally:
        conn.close()


def head(method: str, target: str, length: int, **headers: str) -> bytes:
    extra = "".join(f"{k.replace('_', '-')}: {v}\r\n" for k, v in headers.items())
    return (f"{method} {target} HTTP/1.1\r\nHost: registry\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {length}\r\n"
            f"{extra}\r\n").encode()


def response(data: bytes) -> tuple[int, CIMultiDict[str], bytes, bytes]:
    """(status, headers, body, what follows) of the first HTTP response in ``data``."""
    top, sep, rest = data.partition(b"\r\n\r\n")
    assert sep, data[:200]
    lines = top.decode("latin-1").split("\r\n")
    headers: CIMultiDict[str] = CIMultiDict()
    for line in lines[1:]:
        name, _, value = line.partition(": ")
        headers.add(name, value)
    n = int(headers.get("Content-Length", "0"))
    return int(lines[0].split()[1]), headers, rest[:n], rest[n:]


def error_code(body: bytes) -> str:
    code: str = json.loads(body)["errors"][0]["code"]
    return code


# -- monolithic ----------------------------------------------------------------------------
async def test_a_monolithic_post_of_a_big_body(client: Client) -> None:
    data = blob(3 * MIB + 17, 1)
    resp = await client.post(f"/v2/{REPO}/blobs/uploads/", params={"digest": digest(data)},
                             data=payload(data), headers=OCTET)
    assert resp.status == 201, await resp.text()
    assert closes(resp)
    assert resp.headers["Docker-Content-Digest"] == digest(data)
    await assert_blob(client, data)


async def test_post_then_put_of_a_big_body(client: Client, data_dir: Path) -> None:
    data = blob(3 * MIB + 17, 2)
    location = await start_upload(client, REPO)
    resp = await client.put(location, params={"digest": digest(data)}, data=payload(data),
                            headers=OCTET)
    assert resp.status == 201, await resp.text()
    assert closes(resp)
    await assert_blob(client, data)
    assert uploads_left(data_dir) == []


@pytest.mark.parametrize(("size", "taken"), [(TAKE_FROM - 1, False), (TAKE_FROM, True),
                                             (300_000, False)])
async def test_only_bodies_of_1_mib_and_more_close_the_connection(
        client: Client, size: int, taken: bool) -> None:
    assert TAKE_FROM == MIB
    data = blob(size, size)
    resp = await client.post(f"/v2/{REPO}/blobs/uploads/", params={"digest": digest(data)},
                             data=payload(data), headers=OCTET)
    assert resp.status == 201, await resp.text()
    assert closes(resp) is taken
    await assert_blob(client, data)


async def test_a_chunked_big_body_stays_on_the_loop(client: Client) -> None:
    data = blob(3 * MIB, 3)

    async def pieces() -> AsyncIterator[bytes]:
        for i in range(0, len(data), 100_000):
            yield data[i:i + 100_000]

    resp = await client.post(f"/v2/{REPO}/blobs/uploads/", params={"digest": digest(data)},
                             data=pieces(), headers=OCTET)
    assert resp.status == 201, await resp.text()
    assert resp.request_info.headers.get("Transfer-Encoding") == "chunked"
    assert not closes(resp)
    await assert_blob(client, data)


async def test_a_wrong_digest_stores_nothing(client: Client, data_dir: Path) -> None:
    data = blob(3 * MIB, 4)
    wrong = digest(b"something else")
    resp = await client.post(f"/v2/{REPO}/blobs/uploads/", params={"digest": wrong},
                             data=payload(data), headers=OCTET)
    await error_of(resp, 400, "DIGEST_INVALID")
    assert closes(resp)
    await assert_no_blob(client, wrong)
    await assert_no_blob(client, digest(data))
    assert uploads_left(data_dir) == []


# -- chunked uploads -----------------------------------------------------------------------
SIZES = [MIB + 5, 2 * MIB + 4093, 100, 4 * MIB]  # odd offsets, a small one between big ones


async def push_in_chunks(client: Client, data: bytes) -> None:
    location = await start_upload(client, REPO)
    offset = 0
    for size in SIZES:
        resp = await patch(client, location, data[offset:offset + size], offset)
        assert resp.status == 202, await resp.text()
        assert closes(resp) is (size >= TAKE_FROM)
        offset += size
        assert resp.headers["Range"] == f"0-{offset - 1}"
        assert await status_range(client, location) == f"0-{offset - 1}"
    last = data[offset:]  # the PUT carries a big last chunk too
    assert len(last) >= TAKE_FROM
    resp = await client.put(location, params={"digest": digest(data)}, data=payload(last),
                            headers=OCTET)
    assert resp.status == 201, await resp.text()
    assert closes(resp)
    await assert_blob(client, data)


Writes = list[tuple[bool, int, int]]


def record_writes(monkeypatch: pytest.MonkeyPatch) -> Writes:
    """The upload writer's pwrites: (with O_DIRECT, position, length)."""
    writes: Writes = []
    real = filesystem._pwrite_all

    def spy(fd: int, data: memoryview, pos: int) -> None:
        writes.append((bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT), pos, len(data)))
        real(fd, data, pos)

    monkeypatch.setattr(filesystem, "_pwrite_all", spy)
    return writes


def assert_written_once(writes: Writes, total: int) -> None:
    """The writes cover ``total`` bytes, none twice."""
    spans = sorted((pos, n) for _, pos, n in writes if n)
    assert all(a + n <= b for (a, n), (b, _) in itertools.pairwise(spans)), spans
    assert sum(n for _, n in spans) == total


async def test_patches_of_odd_sizes_then_put(client: Client,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    writes = record_writes(monkeypatch)
    data = blob(sum(SIZES) + MIB + 333, 5)
    await push_in_chunks(client, data)
    assert writes and not any(d for d, _, _ in writes)  # through the page cache
    assert_written_once(writes, len(data) - 100)  # the 100-byte PATCH was streamed


def _no_fsync(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.execute("PRAGMA synchronous=OFF")


@pytest.fixture
def direct_store(data_dir: Path) -> FilesystemBlobStore:
    return FilesystemBlobStore(data_dir, direct_io=True)


@pytest.fixture
def direct_app(data_dir: Path, direct_store: FilesystemBlobStore) -> Iterator[web.Application]:
    """``make_app``'s app over a store writing upload bodies with O_DIRECT."""
    engine = create_engine(sqlite_url(data_dir))
    sa.event.listen(engine, "connect", _no_fsync)
    database = Database(engine)
    registry = Registry.build(RegistryStore(database), direct_store)
    yield create_app(registry, housekeeping_interval=0)
    database.close()
    engine.dispose()


async def test_patches_of_odd_sizes_written_directly(
        aiohttp_client: ClientFactory, direct_app: web.Application,
        direct_store: FilesystemBlobStore, monkeypatch: pytest.MonkeyPatch) -> None:
    # the test's directory must take O_DIRECT (ext4, xfs...; not tmpfs)
    assert direct_store.writes_direct, "the test directory's filesystem refuses O_DIRECT"
    writes = record_writes(monkeypatch)
    client = await aiohttp_client(direct_app)
    data = blob(sum(SIZES) + MIB + 333, 6)
    await push_in_chunks(client, data)
    assert_written_once(writes, len(data) - 100)
    direct_writes = [(pos, n) for d, pos, n in writes if d and n]
    # a buffer starting on an ALIGN boundary goes with O_DIRECT (the first buffer of a body
    # at an unaligned offset, and tails, through the page cache)
    assert sum(n for _, n in direct_writes) >= 3 * MIB
    assert all(pos % direct.ALIGN == 0 and n % direct.ALIGN == 0 for pos, n in direct_writes)


# -- broken, silent and oversized bodies ---------------------------------------------------
async def first_chunk(client: Client, chunk: bytes) -> str:
    """A new session holding ``chunk``; its location."""
    location = await start_upload(client, REPO)
    assert (await patch(client, location, chunk, 0)).status == 202
    return location


async def resume_and_finish(client: Client, data_dir: Path, location: str, data: bytes,
                            first: int) -> None:
    """The session is still at ``first`` (recorded and stored); the rest of ``data`` from
    there and the PUT complete it, byte for byte."""
    assert await status_range(client, location) == f"0-{first - 1}"
    assert (data_dir / "uploads" / location.rsplit("/", 1)[1]).stat().st_size == first
    resp = await patch(client, location, data[first:], first)
    assert resp.status == 202, await resp.text()
    resp = await client.put(location, params={"digest": digest(data)})
    assert resp.status == 201, await resp.text()
    await assert_blob(client, data)


@pytest.mark.parametrize("ending", ["close", "reset"])
async def test_a_client_gone_mid_body_leaves_the_offset(
        client: Client, data_dir: Path, caplog: pytest.LogCaptureFixture, ending: str) -> None:
    data = blob(MIB + 5 + 3 * MIB, 7)
    first = MIB + 5
    location = await first_chunk(client, data[:first])
    async with raw(client) as conn:
        await conn.send(head("PATCH", location, 3 * MIB,
                             Content_Range=f"{first}-{first + 3 * MIB - 1}")
                        + data[first:first + 3 * MIB // 2])
        await settled(client, busy=True)  # the server is waiting for the rest
        if ending == "reset":  # an RST instead of a FIN
            conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    await settled(client)
    await resume_and_finish(client, data_dir, location, data, first)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_body_ending_early_is_refused(client: Client, data_dir: Path) -> None:
    data = blob(2 * MIB, 8)
    location = await start_upload(client, REPO)
    async with raw(client) as conn:
        await conn.send(head("PATCH", location, 3 * MIB) + data)
        conn.sock.shutdown(socket.SHUT_WR)  # the body ends here, the response can come
        status, headers, body, rest = response(await conn.until_closed())
    assert status == 400
    assert error_code(body) == "BLOB_UPLOAD_INVALID"
    assert b"received 2097152 of 3145728 bytes" in body
    assert headers["Connection"] == "close"
    assert rest == b""
    assert await status_range(client, location) == "0-0"  # nothing received
    stored = data_dir / "uploads" / location.rsplit("/", 1)[1]
    assert not stored.exists() or stored.stat().st_size == 0


async def test_a_silent_client_gets_408_and_the_offset_stays(
        aiohttp_client: ClientFactory, make_app: AppFactory, data_dir: Path) -> None:
    assert Limits().body_timeout_seconds == 120.0
    client = await aiohttp_client(make_app(Limits(body_timeout_seconds=1.0)))
    data = blob(MIB + 5 + 3 * MIB, 9)
    first = MIB + 5
    location = await first_chunk(client, data[:first])
    loop = asyncio.get_running_loop()
    async with raw(client) as conn:
        await conn.send(head("PATCH", location, 3 * MIB,
                             Content_Range=f"{first}-{first + 3 * MIB - 1}")
                        + data[first:first + 1200 * 1024])
        started = loop.time()
        status, headers, body, rest = response(await conn.until_closed())
        waited = loop.time() - started
    assert status == 408
    assert error_code(body) == "BLOB_UPLOAD_INVALID"
    assert headers["Connection"] == "close"
    assert rest == b""
    assert 0.9 <= waited < 5, waited
    await resume_and_finish(client, data_dir, location, data, first)


async def test_a_patch_over_the_size_limit_is_413(
        aiohttp_client: ClientFactory, make_app: AppFactory, data_dir: Path) -> None:
    client = await aiohttp_client(make_app(Limits(max_blob_bytes=2 * MIB)))
    first = blob(MIB + 5, 10)
    location = await start_upload(client, REPO)
    assert (await patch(client, location, first, 0)).status == 202
    async with raw(client) as conn:
        end = len(first) + 3 * MIB - 1
        sending = asyncio.create_task(conn.send_quietly(
            head("PATCH", location, 3 * MIB, Content_Range=f"{len(first)}-{end}")
            + blob(3 * MIB, 11)))
        status, headers, body, _ = response(await conn.until_closed())
        await sending
    assert status == 413
    assert error_code(body) == "SIZE_INVALID"
    assert headers["Connection"] == "close"
    assert await status_range(client, location) == f"0-{len(first) - 1}"
    assert (data_dir / "uploads" / location.rsplit("/", 1)[1]).stat().st_size == len(first)
    resp = await client.put(location, params={"digest": digest(first)})
    assert resp.status == 201, await resp.text()


async def test_a_monolithic_post_over_the_size_limit_is_413(
        aiohttp_client: ClientFactory, make_app: AppFactory, data_dir: Path) -> None:
    client = await aiohttp_client(make_app(Limits(max_blob_bytes=2 * MIB)))
    data = blob(3 * MIB, 12)
    async with raw(client) as conn:
        sending = asyncio.create_task(conn.send_quietly(
            head("POST", f"/v2/{REPO}/blobs/uploads/?digest={digest(data)}", len(data))
            + data))
        status, headers, body, _ = response(await conn.until_closed())
        await sending
    assert status == 413
    assert error_code(body) == "SIZE_INVALID"
    assert headers["Connection"] == "close"
    await settled(client)
    await assert_no_blob(client, digest(data))
    # the session the POST opened holds nothing (it expires as idle)
    assert all(p.stat().st_size == 0 for p in (data_dir / "uploads").iterdir())


async def test_a_big_body_refused_before_it_is_read_keeps_the_connection(
        client: Client) -> None:
    location = await start_upload(client, REPO)
    data = blob(3 * MIB, 14)
    resp = await patch(client, location, data, 5)  # the session is at 0
    await error_of(resp, 416, "BLOB_UPLOAD_INVALID")
    assert resp.headers["Range"] == "0-0"
    assert not closes(resp)  # the body stayed with aiohttp
    resp = await patch(client, location, data, 0)
    assert resp.status == 202, await resp.text()
    assert resp.headers["Range"] == f"0-{len(data) - 1}"


# -- the connection after a taken body -----------------------------------------------------
async def test_a_pipelined_request_after_a_taken_body_is_not_served(client: Client) -> None:
    data = blob(3 * MIB, 13)
    small = b"pipelined"
    async with raw(client) as conn:
        await conn.send(
            head("POST", f"/v2/{REPO}/blobs/uploads/?digest={digest(data)}", len(data))
            + data
            + head("POST", f"/v2/{REPO}/blobs/uploads/?digest={digest(small)}", len(small))
            + small)
        status, headers, body, rest = response(await conn.until_closed())
    assert status == 201, body
    assert headers["Connection"] == "close"
    assert headers["Docker-Content-Digest"] == digest(data)
    assert rest == b""  # one response, then the connection ended
    await settled(client)
    await assert_blob(client, data)
    await assert_no_blob(client, digest(small))
