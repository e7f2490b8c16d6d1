"""Online garbage collection racing concurrent pushes that share layers.

A real ``strata serve`` (two workers) collects every 0.2 s with a four-second grace period while
pushers push images sharing a base layer, a deleter untags some of them, ``strata gc`` runs from
another process at the same time, and a checker keeps pulling every kept image. No blob that a
tagged manifest references may ever disappear; the untagged garbage must go.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import threading
import time

import aiohttp
import pytest

from strata.client.registry import RegistryClient, sha256
from support.server import StrataServer, strata_command

pytestmark = pytest.mark.server
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
# Pushes take up to a few seconds here under load (8 pushers and two collectors on 2 cores);
# the grace period must outlast one push, as an hour does in production.
GRACE = 4


def image(base: bytes, i: int) -> tuple[list[bytes], bytes]:
    own = os.urandom(20_000 + i)
    config = json.dumps({"architecture": "amd64", "os": "linux", "i": i}).encode()
    return [base, own], config


async def race(server: StrataServer, seconds: float) -> dict[str, int]:
    bases = [os.urandom(150_000) for _ in range(3)]
    kept: dict[str, tuple[str, list[bytes], bytes]] = {}
    doomed: list[tuple[str, list[bytes]]] = []
    stop = asyncio.Event()
    counts = {"pushed": 0, "deleted": 0, "checked": 0}
    async with aiohttp.ClientSession() as session:
        client = RegistryClient(server.url, session)

        async def pusher(w: int) -> None:
            i = 0
            while not stop.is_set():
                i += 1
                repo = f"race/{'kept' if i % 2 else 'doomed'}{w}"
                layers, config = image(bases[(w + i) % len(bases)], w * 10_000 + i)
                digest = await client.push_image(repo, f"t{i}", layers, config)
                counts["pushed"] += 1
                if i % 2:
                    kept[f"{repo}:t{i}"] = (digest, layers, config)
                else:
                    doomed.append((f"{repo}:t{i}", layers))

        async def deleter() -> None:
            while not stop.is_set():
                await asyncio.sleep(0.05)
                while doomed:
                    ref, _ = doomed.pop()
                    repo, tag = ref.split(":")
                    await client.delete_manifest(repo, tag)
                    counts["deleted"] += 1

        async def checker() -> None:
            while not stop.is_set():
                await asyncio.sleep(0.01)
                if not kept:
                    continue
                ref = random.choice(list(kept))
                repo, tag = ref.split(":")
                digest, layers, config = kept[ref]
                assert await client.head_manifest(repo, tag) == digest
                for blob in [*layers, config]:
                    assert await client.get_blob(repo, sha256(blob)) == blob, (
                        f"referenced blob of {ref} is gone")
                counts["checked"] += 1

        tasks = [asyncio.create_task(pusher(w)) for w in range(8)]
        tasks += [asyncio.create_task(deleter()), asyncio.create_task(checker())]
        await asyncio.sleep(seconds)
        stop.set()
        await asyncio.gather(*tasks)
        for ref, _ in doomed:  # what the deleter had no time for
            repo, tag = ref.split(":")
            await client.delete_manifest(repo, tag)
        # Final sweep: every kept image is whole.
        for ref, (digest, layers, config) in kept.items():
            repo, tag = ref.split(":")
            assert await client.head_manifest(repo, tag) == digest
            for blob in [*layers, config]:
                assert await client.get_blob(repo, sha256(blob)) == blob
    return counts


def test_gc_never_removes_referenced_blobs(strata_server_factory,  # type: ignore[no-untyped-def]
                                           database_args: list[str]) -> None:
    # On PostgreSQL there is no data-dir write lock: the collector and the pushes rely on
    # row and table locks instead (see meta/gc_store.py).
    database = database_args
    server: StrataServer = strata_server_factory(
        "--workers", "2", "--gc-interval", "0.2", "--gc-grace", str(GRACE), "--no-auth",
        *database)
    stop = threading.Event()
    cli_runs: list[int] = []

    def cli_gc() -> None:  # a second collector in another process
        while not stop.is_set():
            proc = subprocess.run([*strata_command(), "gc", "--data", str(server.data_dir),
                                   *database, "--grace", str(GRACE), "--json"],
                                  capture_output=True, timeout=60)
            cli_runs.append(proc.returncode)

    thread = threading.Thread(target=cli_gc)
    thread.start()
    try:
        counts = asyncio.run(race(server, seconds=10.0))
    finally:
        stop.set()
        thread.join()
    assert counts["pushed"] > 20 and counts["deleted"] > 5 and counts["checked"] > 5, counts
    assert cli_runs and all(rc == 0 for rc in cli_runs), cli_runs
    # The garbage goes: after the grace period nothing unreferenced is left.
    time.sleep(GRACE + 0.5)
    proc = subprocess.run([*strata_command(), "gc", "--data", str(server.data_dir), *database,
                           "--grace", str(GRACE), "--json"], capture_output=True, timeout=60,
                          check=True)
    report = json.loads(proc.stdout)
    assert report["links"] == 0 and not report["manifests"], report
    untagged = server.request("GET", "/v2/race/doomed0/tags/list")
    assert untagged.status == 200 and json.loads(untagged.body)["tags"] == []
    metrics = server.request("GET", "/metrics").body.decode()
    assert 'strata_gc_runs_total{result="ok"}' in metrics
