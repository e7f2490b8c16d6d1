#!/usr/bin/env python3
"""Profile one benchmark workload inside ``strata serve`` with py-spy.

py-spy is not a project dependency: install it in a venv of its own and pass its path, e.g.

    python3 -m venv /tmp/pyspy && /tmp/pyspy/bin/pip install py-spy
    .venv/bin/python bench/profile.py images --py-spy /tmp/pyspy/bin/py-spy

It starts strata alone (fresh data dir, ``--workers`` as in run.py), drives the workload for
``--seconds`` while ``py-spy record --subprocesses --threads --idle`` samples every process,
then prints where the workers' event-loop threads spend their time (inclusive share of the
samples, strata and SQL frames only; ``EpollSelector.select`` is the loop waiting for work).
The raw collapsed stacks stay in ``bench/results/profile-<workload>.txt`` (flamegraph input).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import blobdata
import workloads
import wrkrun
from servers import strata_server

MIB = 1 << 20
_FRAME = re.compile(r"(.*?) \((.*?):\d+\)")
_SHOW = ("strata/", "EpollSelector.select", "do_commit", "do_execute", "_on_begin",
         "_SelectorSocketTransport")


async def drive(base: str, workload: str, seconds: float) -> list[str]:
    out: list[str] = []
    async with workloads.new_session() as sess:
        c = workloads.Client(base, sess)
        image = workloads.SmallImage.make(random.Random(1))
        manifest = await c.push_image("bench/manifest", "latest", image)
        size = 256 * MIB
        if workload in ("mono", "chunked", "get"):
            for seed in range(8):
                blobdata.digest(seed, size)
            await c.push_monolithic("bench/big", 0, size)
        yield_at = time.monotonic() + seconds
        seed, rnd = 1, 0
        while time.monotonic() < yield_at:
            t0 = time.perf_counter()
            if workload == "mono":
                await c.push_monolithic("bench/big", seed % 8, size)
                out.append(f"{256 / (time.perf_counter() - t0):.0f} MiB/s")
            elif workload == "chunked":
                await c.push_chunked("bench/big", seed % 8, size, 16 * MIB)
                out.append(f"{256 / (time.perf_counter() - t0):.0f} MiB/s")
            elif workload == "get":
                await c.get_blob("bench/big", blobdata.digest(0, size), size)
                out.append(f"{256 / (time.perf_counter() - t0):.0f} MiB/s")
            elif workload in ("manifest", "head"):
                path = (f"/v2/bench/manifest/manifests/{manifest}" if workload == "manifest"
                        else f"/v2/bench/manifest/blobs/"
                             f"{await c.push_blob_single_post('bench/manifest', b'')}")
                res = await asyncio.to_thread(
                    wrkrun.run, base + path, connections=16,
                    duration=max(1.0, yield_at - time.monotonic()), threads=2,
                    headers={"Accept": workloads.MANIFEST_ACCEPT},
                    method="GET" if workload == "manifest" else "HEAD")
                out.append(f"{res.rps:.0f} req/s, p99 {res.p99_ms:.1f} ms")
            elif workload == "images":
                rng = random.Random(rnd)
                jobs = [(f"bench/small{i % 20}", f"r{rnd}-i{i}", workloads.SmallImage.make(rng))
                        for i in range(200)]
                secs = await workloads.push_many(c, jobs, 20)
                out.append(f"{200 / secs:.1f} images/s")
                rnd += 1
            seed += 1
    return out


def summarize(raw: Path, top: int) -> str:
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if "run_worker" not in stack or "MainThread" not in stack:
            continue  # only the workers' event-loop threads
        n = int(count)
        total += n
        seen = set()
        for frame in stack.split(";"):
            m = _FRAME.match(frame)
            key = f"{m.group(1)} ({m.group(2)})" if m else frame
            if key not in seen and any(s in key for s in _SHOW):
                seen.add(key)
                incl[key] += n
    lines = [f"worker event-loop samples: {total}"]
    lines += [f"{100 * v / max(total, 1):5.1f}%  {k}" for k, v in incl.most_common(top)]
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("workload", choices=["mono", "chunked", "get", "manifest", "head", "images"])
    p.add_argument("--py-spy", default=shutil.which("py-spy") or "py-spy")
    p.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    p.add_argument("--top", type=int, default=40)
    args = p.parse_args()
    out_dir = Path(__file__).resolve().parent / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    raw = out_dir / f"profile-{args.workload}.txt"
    with tempfile.TemporaryDirectory(prefix="strata-profile-") as tmp:
        server = strata_server(Path(tmp), args.workers)
        server.start()
        try:
            spy = subprocess.Popen(
                [args.py_spy, "record", "--pid", str(server.pid), "--subprocesses", "--threads",
                 "--idle", "--format", "raw", "-r", str(args.rate),
                 "-d", str(int(args.seconds + 4)), "-o", str(raw)],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            time.sleep(1.0)
            for line in asyncio.run(drive(server.base, args.workload, args.seconds)):
                print(line)
            _, err = spy.communicate(timeout=args.seconds + 60)
            if spy.returncode != 0:
                print(f"py-spy failed: {err}", file=sys.stderr)
                return 1
        finally:
            server.stop()
    print(summarize(raw, args.top))
    print(f"raw stacks: {raw}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
