"""Request helpers and assertions shared by the api tests."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient

from strata.errors import Code
from support.raw_http import raw_request as raw_request

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


