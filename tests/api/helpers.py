"""Request helpers and assertions shared by the api tests."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient

from strata.errors import Code

from .oci_fixtures import Blob, Manifest

Client = TestClient[web.Request, web.Application]

API_VERSION = ("Docker-Distribution-API-Version", "registry/2.0")
# Error codes of the distribution-spec's table (plus the catalogue's own extras).
CATALOGUE = {c.name: c.status for c in Code}


async def error_of(resp: ClientResponse, status: int, code: str) -> dict[str, Any]:
    """Assert ``resp`` is the spec's error body with ``status`` and ``code``; return the error."""
    body = await resp.read()
    assert resp.status == status, (resp.status, body[:500])
    assert resp.headers.get(API_VERSION[0]) == API_VERSION[1] or not resp.url.path.startswith(
        "/v2")
    assert resp.content_type == "application/json", resp.content_type
    doc = json.loads(body)
    assert isinstance(doc, dict) and list(doc) == ["errors"], doc
    errors = doc["errors"]
    assert isinstance(errors, list) and len(errors) >= 1, doc
    for err in errors:
        assert isinstance(err["code"], str) and err["code"] in CATALOGUE, err
        assert isinstance(err["message"], str) and err["message"], err
    assert errors[0]["code"] == code, doc
    first: dict[str, Any] = errors[0]
    return first


async def push_blob(client: Client, repo: str, blob: Blob | bytes) -> str:
    """Monolithic POST then PUT; returns the digest."""
    if isinstance(blob, bytes):
        blob = Blob(blob)
    resp = await client.post(f"/v2/{repo}/blobs/uploads/")
    assert resp.status == 202, await resp.text()
    location = resp.headers["Location"]
    resp = await client.put(location, params={"digest": blob.digest}, data=blob.data,
                            headers={"Content-Type": "application/octet-stream"})
    assert resp.status == 201, await resp.text()
    return blob.digest


async def push_manifest(client: Client, repo: str, ref: str, manifest: Manifest,
                        *, blobs: bool = True) -> ClientResponse:
    if blobs:
        for blob in manifest.blobs:
            await push_blob(client, repo, blob)
    resp = await client.put(f"/v2/{repo}/manifests/{ref}", data=manifest.body,
                            headers={"Content-Type": manifest.media_type})
    assert resp.status == 201, await resp.text()
    return resp


async def start_upload(client: Client, repo: str) -> str:
    resp = await client.post(f"/v2/{repo}/blobs/uploads/")
    assert resp.status == 202, await resp.text()
    location: str = resp.headers["Location"]
    return location


async def raw_request(client: Client, method: str,
                      target: str) -> tuple[int, dict[str, str], bytes]:
    """Send ``target`` byte for byte (aiohttp's client would normalise ``..`` away)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    try:
        writer.write(f"{method} {target} HTTP/1.1\r\nHost: registry\r\nContent-Length: 0\r\n"
                     "Connection: close\r\n\r\n".encode())
        await writer.drain()
        data = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return status, headers, body
