"""Scale-out: two ``strata serve`` nodes, each with its own data dir, share one PostgreSQL
database and one S3-compatible bucket (``rclone serve s3``). A chunked upload whose requests
alternate between the nodes completes; what one node stored the other serves; ``strata gc``
and ``strata scrub`` work on the shared stores."""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from strata.client.registry import sha256
from support.server import StrataServer, strata_command

pytestmark = pytest.mark.server

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def cli(tmp_path: Path, scale_out_stores: tuple[list[str], dict[str, str]], *argv: str
        ) -> subprocess.CompletedProcess[str]:
    args, env = scale_out_stores
    return subprocess.run([*strata_command(), *argv, "--data", str(tmp_path / "cli"), *args],
                          capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, **env})


async def _expect(resp: aiohttp.ClientResponse, status: int) -> Any:
    body = await resp.read()
    assert resp.status == status, (resp.status, body[:300])
    return resp


async def chunked_push_across(a: StrataServer, b: StrataServer, repo: str,
                              data: bytes, chunk: int) -> str:
    """POST on a, PATCHes alternating b, a, b, …, PUT on a; status checked on the other."""
    digest = sha256(data)
    async with aiohttp.ClientSession() as s:
        resp = await _expect(await s.post(f"{a.url}/v2/{repo}/blobs/uploads/"), 202)
        location = resp.headers["Location"]
        nodes = itertools.cycle([b, a])
        for start in range(0, len(data), chunk):
            node = next(nodes)
            part = data[start:start + chunk]
            resp = await _expect(await s.patch(
                f"{node.url}{location}", data=io.BytesIO(part),
                headers={"Content-Range": f"{start}-{start + len(part) - 1}",
                         "Content-Type": "application/octet-stream"}), 202)
            location = resp.headers["Location"]
            other = a if node is b else b
            status = await _expect(await s.get(f"{other.url}{location}"), 204)
            assert status.headers["Range"] == f"0-{start + len(part) - 1}"
        await _expect(await s.put(f"{a.url}{location}", params={"digest": digest}), 201)
    return digest


def test_nodes_share_uploads_blobs_and_manifests(
        scale_out_nodes: tuple[StrataServer, StrataServer], tmp_path: Path,
        scale_out_stores: tuple[list[str], dict[str, str]]) -> None:
    a, b = scale_out_nodes
    data = os.urandom(5 * (1 << 20) + 12345)
    config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()

    async def scenario() -> tuple[str, str]:
        layer = await chunked_push_across(a, b, "scale/app", data, 2 << 20)
        cfg = await chunked_push_across(b, a, "scale/app", config, 1 << 20)
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": cfg, "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": layer, "size": len(data)}]}).encode()
        async with aiohttp.ClientSession() as s:
            await _expect(await s.put(f"{b.url}/v2/scale/app/manifests/v1", data=manifest,
                                      headers={"Content-Type": OCI_MANIFEST}), 201)
            for node in (a, b):
                resp = await _expect(await s.get(f"{node.url}/v2/scale/app/manifests/v1",
                                                 headers={"Accept": OCI_MANIFEST}), 200)
                assert await resp.read() == manifest
                resp = await _expect(await s.get(f"{node.url}/v2/scale/app/blobs/{layer}"), 200)
                assert await resp.read() == data
                resp = await _expect(await s.get(f"{node.url}/v2/scale/app/blobs/{layer}",
                                                 headers={"Range": "bytes=100-199"}), 206)
                assert await resp.read() == data[100:200]
        return layer, sha256(manifest)

    layer, manifest_digest = asyncio.run(scenario())

    scrub = cli(tmp_path, scale_out_stores, "scrub", "--json")
    assert scrub.returncode == 0, scrub.stdout + scrub.stderr
    assert json.loads(scrub.stdout)["blobs"] == 2

    async def delete() -> None:
        async with aiohttp.ClientSession() as s:
            await _expect(await s.delete(
                f"{a.url}/v2/scale/app/manifests/{manifest_digest}"), 202)

    asyncio.run(delete())
    gc = cli(tmp_path, scale_out_stores, "gc", "--grace", "0", "--json")
    assert gc.returncode == 0, gc.stdout + gc.stderr
    report = json.loads(gc.stdout)
    assert report["bytes"] >= len(data), report

    async def gone() -> None:
        async with aiohttp.ClientSession() as s:
            for node in (a, b):
                resp = await s.get(f"{node.url}/v2/scale/app/blobs/{layer}")
                assert resp.status == 404, resp.status

    asyncio.run(gone())
    scrub = cli(tmp_path, scale_out_stores, "scrub", "--json")
    assert scrub.returncode == 0 and json.loads(scrub.stdout)["blobs"] == 0, scrub.stdout
