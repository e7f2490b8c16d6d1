"""Limits that keep the server up under bad load, and /metrics.

Oversize blobs get 413 SIZE_INVALID, a silent client 408, uploads beyond the per-worker bound
429 TOOMANYREQUESTS with Retry-After; each refusal leaves the upload session where it was.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.test_utils import TestClient

from strata.registry.limits import Limits
from strata.registry.service import Registry
from strata.server.app import create_app
from strata.server.gate import UPLOAD_GATE
from strata.server.keys import REGISTRY
from strata.server.metrics import Metrics

Client = TestClient[web.Request, web.Application]


async def start(client: Client, repo: str = "lim/a") -> str:
    resp = await client.post(f"/v2/{repo}/blobs/uploads/")
    assert resp.status == 202
    return resp.headers["Location"]


async def status_range(client: Client, location: str) -> str:
    resp = await client.get(location)
    assert resp.status == 204
    return resp.headers["Range"]


async def test_blob_over_the_size_cap_is_413(aiohttp_client, make_app) -> None:  # type: ignore[no-untyped-def]
    client = await aiohttp_client(make_app(Limits(max_blob_bytes=1000)))
    location = await start(client)
    resp = await client.patch(location, data=b"a" * 600, headers={"Content-Range": "0-599"})
    assert resp.status == 202
    resp = await client.patch(location, data=b"b" * 600, headers={"Content-Range": "600-1199"})
    assert resp.status == 413
    body = await resp.json()
    assert body["errors"][0]["code"] == "SIZE_INVALID"
    assert await status_range(client, location) == "0-599"
    digest = "sha256:" + hashlib.sha256(b"a" * 600).hexdigest()
    resp = await client.put(location, params={"digest": digest})
    assert resp.status == 201


async def stalled_body(first: bytes, stall: float) -> AsyncIterator[bytes]:
    yield first
    await asyncio.sleep(stall)
    yield b"late"


async def test_silent_client_gets_408_and_loses_nothing(aiohttp_client, make_app) -> None:  # type: ignore[no-untyped-def]
    client = await aiohttp_client(make_app(Limits(body_timeout_seconds=0.3)))
    location = await start(client)
    resp = await client.patch(location, data=b"x" * 100, headers={"Content-Range": "0-99"})
    assert resp.status == 202
    resp = await client.patch(location, data=stalled_body(b"y" * 50, 1.5))
    assert resp.status == 408
    assert (await resp.json())["errors"][0]["code"] == "BLOB_UPLOAD_INVALID"
    assert await status_range(client, location) == "0-99"


async def test_uploads_beyond_the_bound_get_429(aiohttp_client, make_app) -> None:  # type: ignore[no-untyped-def]
    client = await aiohttp_client(make_app(Limits(max_concurrent_uploads=1)))
    first, second = await start(client), await start(client)
    release = asyncio.Event()

    async def slow() -> AsyncIterator[bytes]:
        yield b"1" * 10
        await release.wait()
        yield b"2" * 10

    busy = asyncio.create_task(client.patch(first, data=slow()))
    for _ in range(100):
        await asyncio.sleep(0.01)
        if client.app[UPLOAD_GATE].active:
            break
    resp = await client.patch(second, data=b"z" * 10)
    assert resp.status == 429
    assert resp.headers["Retry-After"] == "1"
    assert (await resp.json())["errors"][0]["code"] == "TOOMANYREQUESTS"
    release.set()
    assert (await busy).status == 202
    assert await status_range(client, first) == "0-19"
    resp = await client.patch(second, data=b"z" * 10)  # the slot is free again
    assert resp.status == 202


async def test_metrics_count_requests_and_bytes(aiohttp_client, make_app) -> None:  # type: ignore[no-untyped-def]
    base: web.Application = make_app()
    registry: Registry = base[REGISTRY]
    app = create_app(registry, housekeeping_interval=0, metrics=Metrics.create())
    client = await aiohttp_client(app)
    location = await start(client)
    data = b"m" * 4096
    resp = await client.put(location, data=data,
                            params={"digest": "sha256:" + hashlib.sha256(data).hexdigest()})
    assert resp.status == 201
    resp = await client.get("/metrics")
    assert resp.status == 200
    text = await resp.text()
    assert 'strata_http_requests_total{method="POST",route="start_upload",status="202"} 1.0' in text
    assert 'strata_http_received_bytes_total{route="finish_upload"} 4096.0' in text
    assert "strata_upload_requests_in_flight 0.0" in text

