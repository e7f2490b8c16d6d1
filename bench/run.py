#!/usr/bin/env python3
"""Side-by-side benchmark: ``strata serve`` against CNCF distribution (``docker-registry``).

Run from the project's venv:  .venv/bin/python bench/run.py [--rounds 3] [--workers N] [--big]

Both registries run at once on free loopback ports with fresh data dirs; every workload runs
against each in turn, the order alternating from one round to the next. The report is a Markdown
table of medians over the rounds (strata | distribution | strata/distribution | target) and
``bench/results/latest.json`` with every sample. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import blobdata
import limits
import procmem
import rawpush
import report
import workloads
import wrkrun
from servers import Server, distribution_server, strata_server

MIB = 1 << 20
BENCH_DIR = Path(__file__).resolve().parent
WORKLOADS = ("mono", "chunked", "get", "manifest", "head", "images", "tags")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--rounds", type=int, default=3, help="A/B rounds (order alternates)")
    p.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)),
                   help="strata serve --workers (default: the CPUs this process may use)")
    p.add_argument("--strata-arg", action="append", default=[], metavar="ARG",
                   help="extra argument for strata serve (repeatable), e.g. "
                        "--strata-arg=--max-uploads=512")
    p.add_argument("--blob-mib", type=int, default=256, help="size of the big blob (MiB)")
    p.add_argument("--chunk-mib", type=int, default=16, help="PATCH chunk size (MiB)")
    p.add_argument("--get-repeats", type=int, default=4,
                   help="timed GETs of the big blob per round (after one verifying GET)")
    p.add_argument("--duration", type=float, default=3.0, help="seconds per wrk run")
    p.add_argument("--concurrency", default="1,16,64",
                   help="wrk connection counts for manifest GETs")
    p.add_argument("--wrk-threads", type=int, default=2, help="wrk -t (capped at -c)")
    p.add_argument("--images", type=int, default=200, help="small images pushed per round")
    p.add_argument("--pushers", type=int, default=20, help="concurrent small-image pushers")
    p.add_argument("--tags", type=int, default=1000, help="tags in the tag-list repository")
    p.add_argument("--page", type=int, default=100, help="n for the tag-list walk")
    p.add_argument("--big", action=argparse.BooleanOptionalAction, default=True,
                   help="also push and GET a --big-mib blob once and report peak RSS")
    p.add_argument("--big-mib", type=int, default=1024)
    p.add_argument("--only", default="",
                   help="comma list of workloads to run: mono,chunked,get,manifest,head,"
                        "images,tags (default: all)")
    p.add_argument("--distribution-cache", default="inmemory", choices=["inmemory", "none"],
                   help="distribution's storage.cache.blobdescriptor (inmemory is the shipped "
                        "default)")
    p.add_argument("--out", type=Path, default=BENCH_DIR / "results" / "latest.json")
    p.add_argument("--base-arg", action="append", default=[], metavar="ARG",
                   help="extra argument for base's strata serve only (repeatable): with "
                        "--base-src src, e.g. --base-arg=--direct-io, strata beside itself "
                        "writing big bodies with O_DIRECT")
    p.add_argument("--base-src", type=Path, default=None,
                   help="A/B: also run 'base', the strata of another checkout's src dir (e.g. "
                        "a 'git worktree add /tmp/base main'), beside strata and "
                        "distribution; strata and base alternate first in each round")
    p.add_argument("--keep", action="store_true", help="keep the temporary data dirs")
    p.add_argument("--max-seconds", type=int, default=1800,
                   help="abort (and stop both servers) after this long")
    args = p.parse_args(argv)
    unknown = set(filter(None, args.only.split(","))) - set(WORKLOADS)
    if unknown:
        p.error(f"--only: unknown workload(s) {', '.join(sorted(unknown))}")
    return args


class Bench:
    def __init__(self, args: argparse.Namespace, servers: dict[str, Server],
                 workdir: Path) -> None:
        self.args = args
        self.servers = servers
        self.workdir = workdir
        self.clients: dict[str, workloads.Client] = {}
        self.samples: dict[str, dict[str, list[float]]] = {}
        self.names = tuple(servers)  # strata, [base,] distribution
        self.info: dict[str, dict[str, Any]] = {n: {} for n in self.names}
        self.errors: list[str] = []
        self.loadavg: list[tuple[float, float, float]] = []  # at the start of each round
        self.manifest_digest: dict[str, str] = {}
        self.empty_blob: dict[str, str] = {}
        self.mono_digest: dict[str, str] = {}
        self.mono_repo: dict[str, str] = {}  # where mono_digest was pushed
        self.tag_names = [f"t{i:05d}" for i in range(args.tags)]
        self.only = set(filter(None, args.only.split(",")))

    def wants(self, name: str) -> bool:
        return not self.only or name in self.only

    def add(self, metric: str, server: str, value: float) -> None:
        self.samples.setdefault(metric, {n: [] for n in self.names})[server].append(value)

    def log(self, msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    # -- setup ---------------------------------------------------------------------------
    async def setup(self) -> None:
        rng = random.Random(4242)
        image = workloads.SmallImage.make(rng)
        for name in self.names:
            c = self.clients[name]
            self.manifest_digest[name] = await c.push_image("bench/manifest", "latest", image)
            # wrk 4.1 cannot do HEAD against a non-empty blob (it waits for Content-Length
            # body bytes that never come), so the HEAD workload asks for the empty blob.
            self.empty_blob[name] = await c.push_blob_single_post("bench/manifest", b"")
            await c.get_blob("bench/manifest", self.empty_blob[name], 0, verify=True)
            if self.wants("tags"):
                await c.push_image("bench/tags", self.tag_names[0], image)  # the blobs
                secs = await workloads.tag_many(c, "bench/tags", image.manifest, self.tag_names)
                self.add("tag_put_per_s", name, len(self.tag_names) / secs)
                self.log(f"{name}: tagged {len(self.tag_names)} in {secs:.2f}s")

    # -- workloads -----------------------------------------------------------------------
    async def push_limit(self, kind: str) -> None:
        """The machine's push limit, min(sha256 rate, durable disk rate), measured right
        before each push pair (the disk rate drifts within minutes on this VM): every byte of
        a push is hashed, and a strata 201 waits for the bytes to be on disk."""
        mib = self.args.blob_mib
        sha = await asyncio.to_thread(limits.sha256_mib_s, mib)
        buffered = await asyncio.to_thread(limits.disk_write_mib_s, self.workdir, mib)
        direct = await asyncio.to_thread(limits.disk_direct_write_mib_s, self.workdir, mib)
        # the disk's durable rate: the faster of a buffered write and an O_DIRECT one (strata
        # writes big bodies with O_DIRECT; a buffered probe alone would understate the limit)
        disk = max(buffered, direct)
        limit = min(sha, disk)
        self.add(f"{kind}_limit_sha256_mib_s", "strata", sha)
        self.add(f"{kind}_limit_disk_buffered_mib_s", "strata", buffered)
        self.add(f"{kind}_limit_disk_direct_mib_s", "strata", direct)
        self.add(f"{kind}_limit_disk_mib_s", "strata", disk)
        self.add(f"{kind}_limit_mib_s", "strata", limit)
        self.log(f"{kind} push limit: sha256 {sha:.0f} MiB/s, durable disk {buffered:.0f} "
                 f"(buffered) / {direct:.0f} (O_DIRECT) MiB/s (load {os.getloadavg()[0]:.1f})")

    def push_fractions(self, kind: str) -> None:
        """strata's push rates of this round as fractions of the limit measured before."""
        limit = self.samples[f"{kind}_limit_mib_s"]["strata"][-1]
        for client in ("", "_aiohttp"):
            rates = self.samples.get(f"{kind}_push{client}_mib_s", {}).get("strata")
            if rates:
                self.add(f"{kind}_push{client}_limit_frac", "strata", rates[-1] / limit)

    async def big_push(self, name: str, rnd: int, kind: str) -> None:
        """The timed push uses ``rawpush`` (sendfile from tmpfs: the client costs next to
        nothing); the same push with the aiohttp client is reported beside it."""
        a = self.args
        size = a.blob_mib * MIB
        seed = rnd * 10 + (0 if kind == "mono" else 1)
        digest = blobdata.digest(seed, size)  # computed before the clock starts
        path = await asyncio.to_thread(rawpush.blob_file, seed, size)
        raw = rawpush.RawClient(self.servers[name].base)
        try:
            async with procmem.RssSampler(self.servers[name].pid) as rss:
                t0 = time.perf_counter()
                if kind == "mono":
                    await asyncio.to_thread(raw.push_monolithic, f"bench/big{rnd}", path, digest)
                else:
                    await asyncio.to_thread(raw.push_chunked, f"bench/big{rnd}", path, digest,
                                            a.chunk_mib * MIB)
                secs = time.perf_counter() - t0
        finally:
            raw.close()
            path.unlink()
        if kind == "mono":
            self.mono_digest[name] = digest
            self.mono_repo[name] = f"bench/big{rnd}"
        self.add(f"{kind}_push_mib_s", name, a.blob_mib / secs)
        self.add(f"{kind}_push_peak_rss_mib", name, rss.peak / MIB)
        # The same bytes again (another repository) with the aiohttp client.
        await asyncio.to_thread(os.sync)
        c = self.clients[name]
        t0 = time.perf_counter()
        if kind == "mono":
            await c.push_monolithic(f"bench/py{rnd}", seed, size)
        else:
            await c.push_chunked(f"bench/py{rnd}", seed, size, a.chunk_mib * MIB)
        self.add(f"{kind}_push_aiohttp_mib_s", name, a.blob_mib / (time.perf_counter() - t0))

    async def big_get(self, name: str, rnd: int) -> None:
        a, c = self.args, self.clients[name]
        size = a.blob_mib * MIB
        digest = self.mono_digest.get(name)
        if digest is None:  # --only get: push one first
            digest = await c.push_monolithic(f"bench/big{rnd}", rnd * 10, size)
            self.mono_digest[name] = digest
            self.mono_repo[name] = f"bench/big{rnd}"
        repo = self.mono_repo[name]  # (--only get: the first round's, in later rounds too)
        await c.get_blob(repo, digest, size, verify=True)  # warms the cache
        async with procmem.RssSampler(self.servers[name].pid) as rss:
            for _ in range(a.get_repeats):
                t0 = time.perf_counter()
                await c.get_blob(repo, digest, size)
                self.add("blob_get_mib_s", name, a.blob_mib / (time.perf_counter() - t0))
        self.add("blob_get_peak_rss_mib", name, rss.peak / MIB)
        if shutil.which("curl"):
            # Same GET with a C client: shows whether the aiohttp client is the limit.
            url = f"{self.servers[name].base}/v2/{repo}/blobs/{digest}"
            mib_s = await asyncio.to_thread(curl_get, url, size)
            self.add("blob_get_curl_mib_s", name, mib_s)
        if shutil.which("skopeo"):
            # Go's containers/image (podman's, skopeo's): the blob as the layer of an image
            await self.add_skopeo_get(name, c, repo, digest, size)

    async def add_skopeo_get(self, name: str, c: workloads.Client, repo: str, digest: str,
                             size: int) -> None:
        config = json.dumps({"architecture": "amd64", "os": "linux",
                             "rootfs": {"type": "layers", "diff_ids": [digest]}}).encode()
        cdigest = await c.push_small_blob(repo, config)
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": workloads.OCI_MANIFEST,
            "config": {"mediaType": workloads.OCI_CONFIG, "digest": cdigest,
                       "size": len(config)},
            "layers": [{"mediaType": workloads.OCI_LAYER, "digest": digest, "size": size}],
        }).encode()
        await c.put_manifest(repo, "get", manifest)
        ref = f"{self.servers[name].base.removeprefix('http://')}/{repo}:get"
        mib_s = await asyncio.to_thread(skopeo_get, ref, size)
        self.add("blob_get_skopeo_mib_s", name, mib_s)

    def wrk(self, name: str, metric: str, path: str, conns: int, method: str = "GET",
            headers: dict[str, str] | None = None) -> None:
        a = self.args
        res = wrkrun.run(self.servers[name].base + path, connections=conns,
                         duration=a.duration, threads=a.wrk_threads, headers=headers,
                         method=method)
        if res.non_2xx or res.socket_errors or res.requests == 0:
            self.errors.append(f"{name} {metric}: {res.non_2xx} non-2xx, "
                               f"{res.socket_errors} socket errors, {res.requests} requests")
        self.add(f"{metric}_rps", name, res.rps)
        self.add(f"{metric}_p99_ms", name, res.p99_ms)

    async def manifest_get(self, name: str, conns: int) -> None:
        hdrs = {"Accept": workloads.MANIFEST_ACCEPT}
        for ref, label in (("latest", "tag"), (self.manifest_digest[name], "digest")):
            await asyncio.to_thread(self.wrk, name, f"manifest_{label}_c{conns}",
                                    f"/v2/bench/manifest/manifests/{ref}", conns,
                                    headers=hdrs)

    async def head_blob(self, name: str) -> None:
        await asyncio.to_thread(self.wrk, name, "head_blob_c64",
                                f"/v2/bench/manifest/blobs/{self.empty_blob[name]}", 64,
                                method="HEAD")

    async def small_images(self, name: str, rnd: int) -> None:
        a = self.args
        rng = random.Random(rnd * 1000 + (0 if name == "strata" else 1))
        jobs = [(f"bench/small{i % a.pushers}", f"r{rnd}-i{i}", workloads.SmallImage.make(rng))
                for i in range(a.images)]
        pid = self.servers[name].pid
        load = os.getloadavg()[0]
        # New connections for every run: SO_REUSEPORT spreads them over the workers by a hash
        # of the client's port, so kept-alive ones would keep one (lopsided) spread all along.
        async with workloads.new_session() as sess:
            client = workloads.Client(self.servers[name].base, sess)
            user0, sys0 = procmem.tree_cpu_s(pid)
            secs = await workloads.push_many(client, jobs, a.pushers)
            user1, sys1 = procmem.tree_cpu_s(pid)
        self.add("small_image_pushes_per_s", name, a.images / secs)
        # server CPU per image (all its processes and threads): what the pushes cost, less
        # dependent on what else the machine runs than the rate
        self.add("small_image_server_cpu_ms", name, 1000 * (user1 - user0 + sys1 - sys0)
                 / a.images)
        self.add("small_image_server_sys_ms", name, 1000 * (sys1 - sys0) / a.images)
        self.log(f"{name}: {a.images / secs:.1f} images/s, server CPU "
                 f"{1000 * (user1 - user0 + sys1 - sys0) / a.images:.2f} ms/image "
                 f"({1000 * (sys1 - sys0) / a.images:.2f} system), load {load:.1f}")

    async def tag_walk(self, name: str) -> None:
        walk = await self.clients[name].walk_tags("bench/tags", self.args.page)
        self.add("tag_walk_ms", name, walk.seconds * 1000)
        self.add("tag_walk_pages", name, len(walk.pages))
        honoured = walk.honoured(self.args.page, self.tag_names)
        self.info[name]["tag_walk_pages"] = walk.pages
        self.info[name]["pagination_honoured"] = honoured
        if sorted(set(walk.tags)) != sorted(self.tag_names):
            self.errors.append(f"{name} tag walk: got {len(set(walk.tags))} distinct tags, "
                               f"wanted {len(self.tag_names)}")

    async def big_memory(self) -> None:
        a = self.args
        size = a.big_mib * MIB
        seed = 999
        self.log(f"digest of the {a.big_mib} MiB blob")
        blobdata.digest(seed, size)
        for name in self.names:
            c = self.clients[name]
            await asyncio.to_thread(os.sync)
            self.log(f"{name}: {a.big_mib} MiB push")
            async with procmem.RssSampler(self.servers[name].pid, pss=True) as rss:
                t0 = time.perf_counter()
                digest = await c.push_monolithic("bench/huge", seed, size)
                push_s = time.perf_counter() - t0
            self.add("big_push_mib_s", name, a.big_mib / push_s)
            self.add("big_push_peak_rss_mib", name, rss.peak / MIB)
            self.info[name]["big_push_rss_baseline_mib"] = rss.baseline / MIB
            self.info[name]["big_push_vmhwm_sum_mib"] = rss.hwm_sum / MIB
            self.add("big_push_peak_pss_mib", name, rss.peak_pss / MIB)
            self.log(f"{name}: {a.big_mib} MiB GET")
            async with procmem.RssSampler(self.servers[name].pid, pss=True) as rss:
                t0 = time.perf_counter()
                await c.get_blob("bench/huge", digest, size)
                get_s = time.perf_counter() - t0
            self.add("big_get_mib_s", name, a.big_mib / get_s)
            self.add("big_get_peak_rss_mib", name, rss.peak / MIB)
            self.info[name]["big_get_vmhwm_sum_mib"] = rss.hwm_sum / MIB
            self.add("big_get_peak_pss_mib", name, rss.peak_pss / MIB)

    # -- driver --------------------------------------------------------------------------
    async def each(self, rnd: int, label: str,
                   fn: Callable[[str], Awaitable[None]], push: str | None = None) -> None:
        """``fn`` on each registry, the order alternating by round; for a push pair
        (``push`` = mono/chunked) the machine's limit is measured first."""
        # Two registries alternate. In an A/B run strata and base alternate at the start of
        # each round, after distribution's turn of the round before (so each follows it, and
        # the files it left, equally often), and distribution goes last.
        names = self.names
        order = names if rnd % 2 == 0 else names[::-1]
        if len(names) == 3:
            order = ("strata", "base", "distribution") if rnd % 2 == 0 \
                else ("base", "strata", "distribution")
        if push is not None:
            await self.push_limit(push)
        for name in order:
            self.log(f"round {rnd + 1}: {label} on {name}")
            # Flush what the previous workload left dirty (distribution never fsyncs its
            # blobs): the kernel's writeback would otherwise land on whoever runs next, and
            # on ext4 it stalls the next fsync (strata's SQLite commits) in particular.
            await asyncio.to_thread(os.sync)
            await fn(name)
        if push is not None:
            self.push_fractions(push)

    async def run(self) -> None:
        a = self.args
        async with contextlib.AsyncExitStack() as stack:
            for name in self.names:
                sess = await stack.enter_async_context(workloads.new_session())
                self.clients[name] = workloads.Client(self.servers[name].base, sess)
            await self.setup()
            conc = [int(x) for x in a.concurrency.split(",") if x]
            for rnd in range(a.rounds):
                self.loadavg.append(os.getloadavg())
                if self.wants("mono"):
                    await self.each(rnd, "monolithic push",
                                    partial(self.big_push, rnd=rnd, kind="mono"), push="mono")
                if self.wants("chunked"):
                    await self.each(rnd, "chunked push",
                                    partial(self.big_push, rnd=rnd, kind="chunked"),
                                    push="chunked")
                if self.wants("get"):
                    await self.each(rnd, "blob GET", partial(self.big_get, rnd=rnd))
                if self.wants("manifest"):
                    for cc in conc:
                        await self.each(rnd, f"manifest GET c={cc}",
                                        partial(self.manifest_get, conns=cc))
                if self.wants("head"):
                    await self.each(rnd, "HEAD blob c=64", self.head_blob)
                if self.wants("images"):
                    await self.each(rnd, f"{a.images} small-image pushes",
                                    partial(self.small_images, rnd=rnd))
                if self.wants("tags"):
                    await self.each(rnd, "tag-list walk", self.tag_walk)
            if a.big:
                await self.big_memory()
            for name in self.names:
                self.info[name]["rss_at_end_mib"] = procmem.tree_rss(self.servers[name].pid) / MIB
                self.info[name]["processes"] = len(procmem.descendants(self.servers[name].pid))


def disk_write_mib_s(directory: Path, mib: int = 256) -> float:
    """Durable write speed of the data dirs' disk (write + fdatasync), MiB/s.

    strata answers a blob push only once the bytes are on disk, so its push rate is bounded
    by this; distribution 2.8 never syncs and is not. Measured before and after the run."""
    return round(limits.disk_write_mib_s(directory, mib), 1)


def curl_get(url: str, size: int) -> float:
    proc = subprocess.run(["curl", "-sS", "-o", "/dev/null", "--max-time", "120",
                           "-w", "%{http_code} %{size_download} %{time_total}", url],
                          capture_output=True, text=True, timeout=150)
    code, got, secs = proc.stdout.split()
    if code != "200" or int(got) != size:
        raise workloads.ProtocolError(f"curl GET {url}: HTTP {code}, {got} bytes")
    return size / MIB / float(secs)


def skopeo_get(ref: str, size: int) -> float:
    """``skopeo copy`` of a one-layer image into a ``dir:`` on tmpfs (it checks the layer's
    digest as it reads, as podman does); MiB/s of the layer over the whole copy."""
    with tempfile.TemporaryDirectory(prefix="strata-skopeo-",
                                     dir="/dev/shm" if os.path.isdir("/dev/shm") else None) \
            as tmp:
        t0 = time.perf_counter()
        proc = subprocess.run(["skopeo", "copy", "--quiet", "--src-tls-verify=false",
                               "--retry-times", "0", f"docker://{ref}", f"dir:{tmp}/img"],
                              capture_output=True, text=True, timeout=300)
        secs = time.perf_counter() - t0
        if proc.returncode != 0:
            raise workloads.ProtocolError(f"skopeo copy {ref}: {proc.stderr.strip()[:300]}")
        got = sum(f.stat().st_size for f in Path(tmp, "img").iterdir())
        if got < size:
            raise workloads.ProtocolError(f"skopeo copy {ref}: {got} bytes, wanted {size}+")
    return size / MIB / secs


def versions() -> dict[str, str]:
    out: dict[str, str] = {"python": platform.python_version()}
    for key, argv in (("distribution", ["docker-registry", "--version"]),
                      ("wrk", ["wrk", "--version"])):
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            out[key] = (proc.stdout or proc.stderr).strip().splitlines()[0]
        except (OSError, subprocess.SubprocessError, IndexError):
            out[key] = "unknown"
    for dist in ("strata", "aiohttp"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="strata-bench-"))
    started = time.time()
    load_at_start = os.getloadavg()
    disk_before = disk_write_mib_s(workdir)
    # the machine's limits (sha256, durable disk, loopback sendfile, last nginx storm), printed
    # beside the table so every figure also reads as a fraction of them
    machine_limits = limits.measure(workdir)
    servers = {"strata": strata_server(workdir, args.workers, args.strata_arg)}
    if args.base_src is not None:
        servers["base"] = strata_server(workdir, args.workers,
                                        args.strata_arg + args.base_arg, name="base",
                                        src=args.base_src)
    servers["distribution"] = distribution_server(workdir, args.distribution_cache)

    def on_alarm(signum: int, frame: object) -> None:
        raise TimeoutError(f"benchmark exceeded --max-seconds={args.max_seconds}")

    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(args.max_seconds)
    bench = Bench(args, servers, workdir)
    failed: BaseException | None = None
    try:
        for srv in servers.values():
            srv.start()
            bench.log(f"{srv.name} on {srv.base} (pid {srv.pid}): {' '.join(srv.argv)}")
        asyncio.run(bench.run())
    except BaseException as exc:  # report what was measured, then re-raise
        failed = exc
    finally:
        signal.alarm(0)
        for srv in servers.values():
            srv.stop()
        if failed is not None:
            for srv in servers.values():
                tail = srv.log_tail()
                if tail:
                    print(f"--- {srv.name} log tail ---\n{tail}", file=sys.stderr)
        disk_after = disk_write_mib_s(workdir)
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    results = report.summarize(bench.samples, bench.info, bench.errors, bench.names)
    results["loadavg_per_round"] = bench.loadavg
    results["config"] = {k: (str(v) if isinstance(v, Path) else v)
                         for k, v in vars(args).items()}
    results["machine"] = {"cpus": os.cpu_count(), "loadavg_at_start": load_at_start,
                          "disk_write_mib_s": [disk_before, disk_after],
                          "loadavg_at_end": os.getloadavg(),
                          "limits": machine_limits.to_json(),
                          "platform": platform.platform(), "versions": versions()}
    results["started_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started))
    results["elapsed_s"] = round(time.time() - started, 1)
    if failed is not None:
        results["failed"] = repr(failed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(report.markdown(results, args))
    print(f"\n{machine_limits.line()}")
    print(f"\nJSON: {args.out}  ({results['elapsed_s']} s)")
    if failed is not None:
        raise failed
    return 1 if bench.errors else 0


if __name__ == "__main__":
    sys.exit(main())
