"""The whole registry in-process on each backend: push, pull, list, delete over HTTP."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiohttp import web
from aiohttp.test_utils import TestClient

from strata.meta.database import Database
from strata.meta.gc_store import SqlGarbageStore
from strata.meta.registry_store import RegistryStore
from strata.oci.mediatypes import OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST
from strata.registry.service import Registry
from strata.server.app import create_app
from strata.storage.filesystem import FilesystemBlobStore

from .helpers import TRICKY_TAGS, sha

Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def client(aiohttp_client: Callable[..., Awaitable[Client]], engine: sa.Engine,
                 tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Client]:
    monkeypatch.setattr(os, "fsync", lambda fd: None)  # durability is the server tier's
    db = Database(engine)  # the real clock, as strata serve
    registry = Registry.build(RegistryStore(db), FilesystemBlobStore(tmp_path / "data"),
                              garbage=SqlGarbageStore(db))
    yield await aiohttp_client(create_app(registry, housekeeping_interval=0))
    db.close()


async def put_blob(client: Client, repo: str, data: bytes, *, chunks: int = 1) -> str:
    digest = sha(data)
    resp = await client.post(f"/v2/{repo}/blobs/uploads/")
    assert resp.status == 202, await resp.text()
    location = resp.headers["Location"]
    step = -(-len(data) // chunks)
    pieces = [data[i:i + step] for i in range(0, len(data), step)]
    for start, piece in zip(range(0, len(data), step), pieces[:-1], strict=False):
        resp = await client.patch(location, data=piece, headers={
            "Content-Type": "application/octet-stream",
            "Content-Range": f"{start}-{start + len(piece) - 1}"})
        assert resp.status == 202, await resp.text()
        location = resp.headers["Location"]
    resp = await client.put(location, params={"digest": digest}, data=pieces[-1],
                            headers={"Content-Type": "application/octet-stream"})
    assert resp.status == 201, await resp.text()
    return digest


async def push_image(client: Client, repo: str, seed: str, tags: list[str]) -> str:
    layer = f"layer of {seed}".encode() * 1000
    config = json.dumps({"architecture": "amd64", "os": "linux", "seed": seed}).encode()
    layer_digest = await put_blob(client, repo, layer, chunks=3)
    config_digest = await put_blob(client, repo, config)
    body = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
        "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": layer_digest, "size": len(layer)}],
    }).encode()
    for tag in tags or [sha(body)]:
        resp = await client.put(f"/v2/{repo}/manifests/{tag}", data=body,
                                headers={"Content-Type": OCI_MANIFEST})
        assert resp.status == 201, await resp.text()
    return sha(body)


async def test_push_pull_list_delete(client: Client) -> None:
    digest = await push_image(client, "lib/app", "one", TRICKY_TAGS)
    others = ["lib/app-2", "lib/app.b", "lib/app/x", "lib/app_c"]
    for i, repo in enumerate(others):
        await push_image(client, repo, f"other{i}", ["latest"])

    resp = await client.get("/v2/lib/app/manifests/a.b", headers={"Accept": OCI_MANIFEST})
    assert resp.status == 200 and resp.headers["Docker-Content-Digest"] == digest
    manifest = json.loads(await resp.read())
    for desc in [manifest["config"], *manifest["layers"]]:
        resp = await client.get(f"/v2/lib/app/blobs/{desc['digest']}")
        assert resp.status == 200
        assert sha(await resp.read()) == desc["digest"]
    resp = await client.head(f"/v2/lib/app-2/blobs/{manifest['config']['digest']}")
    assert resp.status == 404  # not linked there

    resp = await client.get("/v2/lib/app/tags/list", params={"n": "3", "last": "B"})
    assert (await resp.json())["tags"] == [t for t in sorted(TRICKY_TAGS) if t > "B"][:3]
    resp = await client.get("/v2/_catalog")
    assert (await resp.json())["repositories"] == sorted(["lib/app", *others])
    resp = await client.get("/v2/_catalog", params={"n": "2", "last": "lib/app-2"})
    assert (await resp.json())["repositories"] == ["lib/app.b", "lib/app/x"]

    resp = await client.delete(f"/v2/lib/app/manifests/{digest}")
    assert resp.status == 202
    resp = await client.get("/v2/lib/app/manifests/latest")
    assert resp.status == 404
    resp = await client.get("/v2/lib/app/tags/list")
    assert (await resp.json())["tags"] == []
