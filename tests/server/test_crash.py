"""Crash safety: ``kill -9`` of a serving process in the middle of 50 concurrent pushes.

After a restart, every push that was answered 201 is complete and pullable byte for byte,
nothing half-written is visible, and an unfinished chunked upload resumes from the offset its
status reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import subprocess
from dataclasses import dataclass, field

import aiohttp
import pytest

from strata.client.registry import ClientError, RegistryClient, sha256
from support.server import StrataServer, strata_command

pytestmark = pytest.mark.server

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@dataclass
class Push:
    repo: str
    layers: list[bytes]
    config: bytes
    manifest: bytes = b""
    blobs_done: set[str] = field(default_factory=set)
    manifest_done: bool = False


def make_push(i: int) -> Push:
    layers = [os.urandom(200_000 + 37_000 * (i % 7)), os.urandom(64_000)]
    config = json.dumps({"architecture": "amd64", "os": "linux", "n": i}).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha256(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": sha256(b), "size": len(b)} for b in layers],
    }).encode()
    return Push(f"crash/img{i:02d}", layers, config, manifest)


async def run_push(client: RegistryClient, push: Push, chunked: bool) -> None:
    for blob in [*push.layers, push.config]:
        if chunked and len(blob) > 100_000:
            digest = await client.push_blob_chunked(push.repo, blob, 50_000)
        else:
            digest = await client.push_blob(push.repo, blob)
        push.blobs_done.add(digest)
    await client.put_manifest(push.repo, "v1", push.manifest, OCI_MANIFEST)
    push.manifest_done = True


async def push_until_killed(server: StrataServer, pushes: list[Push]) -> None:
    async with aiohttp.ClientSession() as session:
        client = RegistryClient(server.url, session)

        async def one(i: int, push: Push) -> None:
            # The server may die under any of these requests.
            with contextlib.suppress(TimeoutError, aiohttp.ClientError, ClientError):
                await run_push(client, push, chunked=i % 2 == 0)

        tasks = [asyncio.create_task(one(i, p)) for i, p in enumerate(pushes)]
        # Kill once some pushes are complete and others are mid-flight.
        for _ in range(400):
            await asyncio.sleep(0.025)
            if sum(p.manifest_done for p in pushes) >= 10:
                break
        server.kill()
        await asyncio.wait(tasks, timeout=30)


async def verify(server: StrataServer, pushes: list[Push]) -> tuple[int, int]:
    completed = visible = 0
    async with aiohttp.ClientSession() as session:
        client = RegistryClient(server.url, session)
        for push in pushes:
            all_blobs = {sha256(b): b for b in [*push.layers, push.config]}
            for digest, data in all_blobs.items():
                size = await client.blob_exists(push.repo, digest)
                if digest in push.blobs_done:
                    assert size == len(data), f"acknowledged blob {digest} lost"
                if size is not None:  # visible ⇒ complete and correct
                    assert await client.get_blob(push.repo, digest) == data
            got = await client.head_manifest(push.repo, "v1")
            if push.manifest_done:
                completed += 1
                assert got == sha256(push.manifest), f"acknowledged manifest of {push.repo} lost"
            if got is not None:
                visible += 1
                m = await client.get_manifest(push.repo, "v1")
                assert m.content == push.manifest
                assert hashlib.sha256(m.content).hexdigest() == got.split(":")[1]
                for digest, data in all_blobs.items():
                    assert await client.get_blob(push.repo, digest) == data
    return completed, visible


def test_kill_during_concurrent_pushes(strata_server_factory,  # type: ignore[no-untyped-def]
                                       database_args: list[str]) -> None:
    # On PostgreSQL the killed workers' open transactions are rolled back by the database.
    server = strata_server_factory("--workers", "2", "--no-auth", *database_args)
    pushes = [make_push(i) for i in range(50)]
    asyncio.run(push_until_killed(server, pushes))
    assert any(p.manifest_done for p in pushes), "no push finished before the kill"
    assert not all(p.manifest_done for p in pushes), "the kill came after every push"
    server.restart()
    completed, visible = asyncio.run(verify(server, pushes))
    assert completed >= 10 and visible >= completed
    # Everything the database records is stored whole (the scrub reads every byte).
    scrub = subprocess.run([*strata_command(), "scrub", "--data", str(server.data_dir),
                            "--json", *database_args], capture_output=True, text=True,
                           timeout=120, check=False)
    assert scrub.returncode == 0, scrub.stdout + scrub.stderr
    report = json.loads(scrub.stdout)
    assert report["ok"] and report["blobs"] >= 2 * completed, report


async def _resume(server: StrataServer) -> None:
    data = os.urandom(300_000)
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{server.url}/v2/crash/resume/blobs/uploads/") as resp:
            assert resp.status == 202
            location = resp.headers["Location"]
        async with session.patch(f"{server.url}{location}", data=data[:100_000],
                                 headers={"Content-Range": "0-99999"}) as resp:
            assert resp.status == 202
    server.kill()
    server.restart()
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{server.url}{location}") as resp:
            assert resp.status == 204
            assert resp.headers["Range"] == "0-99999"
        async with session.patch(f"{server.url}{location}", data=data[100_000:],
                                 headers={"Content-Range": f"100000-{len(data) - 1}"}) as resp:
            assert resp.status == 202, await resp.text()
        async with session.put(f"{server.url}{location}",
                               params={"digest": sha256(data)}) as resp:
            assert resp.status == 201, await resp.text()
        client = RegistryClient(server.url, session)
        assert await client.get_blob("crash/resume", sha256(data)) == data


def test_unfinished_upload_resumes_after_kill(strata_server_factory) -> None:  # type: ignore[no-untyped-def]
    asyncio.run(_resume(strata_server_factory("--no-auth")))
