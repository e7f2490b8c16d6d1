"""The memory soak (issue #18): ``--minutes`` of mixed pushes and pulls against
``strata serve --workers 2`` with authentication on, sampling the memory of its process tree.

``--concurrency`` client tasks loop over one mix of operations, each a whole registry
exchange with a Bearer token (``repository:soak/*:pull,push``, fetched with Basic credentials
and renewed every minute, as clients do):

* push a small image (two layers of 4-64 KiB, config, manifest) under a new tag in one of
  ``--repos`` repositories; every ``--big-every``-th push carries a ``--big-mib`` layer;
* pull: manifest by digest, then config and layers (verified by length); a 404 for a manifest
  another client deleted meanwhile (it pulls one of the last 200 pushes, deletes take older
  ones) is counted as ``pull_raced_delete``, any other 404 is an error;
* delete: every ``--delete-every``-th operation deletes the manifest of an older push by
  digest (so garbage collection has work: ``--gc-interval`` is 60 s here);
* tag list and a HEAD of a blob.

Every ``--interval`` s the summed PSS and RSS of the server's processes (``smaps_rollup``) are
sampled. After ``--warmup`` minutes, the least-squares slope of summed PSS (and RSS) in
MiB/min is printed with the first and last samples, the max, request counts and errors.
Growth threshold: |slope| < ``--threshold`` MiB/min (default 0.5) passes. Beside it the
Theil-Sen (median) slope of PSS, which the argon2id spikes of the token renewals' logins
(64 MiB for ~0.1 s, when a sample catches one) hardly move.

``--probe DIR`` runs strata's workers under ``bench/memprobe`` (tracemalloc snapshots, live
objects per type, glibc's and SQLite's heap figures; ``bench/memprobe/diff.py``).

``--with-distribution`` runs the same mix against Debian's ``docker-registry`` (open, no
token service) at the same time, sampled the same way.

    .venv/bin/python bench/soak.py                       # 10 minutes
    .venv/bin/python bench/soak.py --minutes 2 --warmup 0.5 --with-distribution
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from base64 import b64encode
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

import procmem
import storm
from servers import Server, distribution_server

MIB = 1 << 20
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tree_memory(root: int) -> tuple[float, float, int, float]:
    """Summed PSS and RSS (MiB) of ``root`` and its descendants, their count, and the part of
    the PSS that is file-backed (library and module pages, faulted in as code first runs)."""
    pids = procmem.descendants(root)
    pss = sum(storm._kib(f"/proc/{p}/smaps_rollup", "Pss") for p in pids)
    rss = sum(storm._kib(f"/proc/{p}/status", "VmRSS") for p in pids)
    file = sum(storm._kib(f"/proc/{p}/smaps_rollup", "Pss_File") for p in pids)
    return pss / 1024, rss / 1024, len(pids), file / 1024


@dataclass
class Sampler:
    root: int
    interval: float
    t0: float = field(default_factory=time.monotonic)
    samples: list[tuple[float, float, float, int, float]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        def run() -> None:
            while True:
                pss, rss, n, file = tree_memory(self.root)
                self.samples.append((time.monotonic() - self.t0, pss, rss, n, file))
                if self._stop.wait(self.interval):
                    return
        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (minutes, MiB) points, MiB/min."""
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else 0.0


def median_slope(points: list[tuple[float, float]]) -> float:
    """Theil-Sen slope (the median of the pairwise slopes), MiB/min: a sample taken while a
    cold login's argon2id holds its 64 MiB moves it little, unlike the least-squares slope
    (one such sample near either end of the window tilts that by ~1 MiB/min)."""
    slopes = sorted((y2 - y1) / (x2 - x1) for i, (x1, y1) in enumerate(points)
                    for x2, y2 in points[i + 1:] if x2 != x1)
    if not slopes:
        return 0.0
    mid = len(slopes) // 2
    return slopes[mid] if len(slopes) % 2 else (slopes[mid - 1] + slopes[mid]) / 2


@dataclass
class Pushed:
    repo: str
    tag: str
    manifest_digest: str
    blobs: list[tuple[str, int]]  # config first, then layers


class Workload:
    """The operation mix against one registry."""

    def __init__(self, name: str, base: str, basic: str | None,
                 args: argparse.Namespace, seed: int) -> None:
        self.name, self.base, self.basic, self.args = name, base, basic, args
        self.rng = random.Random(seed)
        self.counts: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.error_samples: list[str] = []
        self.pushed: list[Pushed] = []
        self.deleted: set[str] = set()  # manifests a client asked to delete
        self.seq = 0
        self.token: str | None = None
        self.token_at = 0.0
        self.big = os.urandom(args.big_mib * MIB) if args.big_mib else b""

    async def headers(self, session: aiohttp.ClientSession) -> dict[str, str]:
        if self.basic is None:
            return {}
        if self.token is None or time.monotonic() - self.token_at > 60:
            scope = "&".join(f"scope=repository:soak/r{i}:pull,push,delete"
                             for i in range(self.args.repos))
            async with session.get(f"{self.base}/auth/token?service=strata&{scope}",
                                   headers={"Authorization": self.basic}) as resp:
                if resp.status != 200:
                    raise RuntimeError(f"token: HTTP {resp.status}")
                answer = await resp.json()
            self.token = answer.get("token") or answer["access_token"]
            self.token_at = time.monotonic()
            self.counts["token"] += 1
        return {"Authorization": f"Bearer {self.token}"}

    async def call(self, session: aiohttp.ClientSession, kind: str, method: str, path: str,
                   ok: tuple[int, ...], body: bytes | None = None,
                   extra: dict[str, str] | None = None) -> tuple[aiohttp.ClientResponse, bytes]:
        hdrs = {**await self.headers(session), **(extra or {})}
        async with session.request(method, f"{self.base}{path}", data=body,
                                   headers=hdrs) as resp:
            data = await resp.read()
        self.counts[kind] += 1
        if resp.status not in ok:
            raise RuntimeError(f"{kind} {method} {path}: HTTP {resp.status} {data[:200]!r}")
        return resp, data

    async def push_blob(self, session: aiohttp.ClientSession, repo: str, blob: bytes) -> str:
        d = digest(blob)
        resp, _ = await self.call(session, "blob_post", "POST", f"/v2/{repo}/blobs/uploads/",
                                  (202,))
        loc = resp.headers["Location"]
        path = loc if loc.startswith("/") else "/" + loc.split("/", 3)[3]
        sep = "&" if "?" in path else "?"
        await self.call(session, "blob_put", "PUT", f"{path}{sep}digest={d}", (201,), blob,
                        {"Content-Type": "application/octet-stream"})
        return d

    async def push(self, session: aiohttp.ClientSession) -> None:
        self.seq += 1
        repo = f"soak/r{self.rng.randrange(self.args.repos)}"
        layers = [os.urandom(self.rng.randrange(4096, 65536)) for _ in range(2)]
        if self.big and self.seq % self.args.big_every == 0:
            layers.append(self.big[:-1] + os.urandom(1))  # a new big blob each time
            self.counts["big_push"] += 1
        config = json.dumps({"architecture": "amd64", "os": "linux", "n": self.seq,
                             "rootfs": {"type": "layers",
                                        "diff_ids": [digest(b) for b in layers]}}).encode()
        descs = []
        for blob in (config, *layers):
            await self.push_blob(session, repo, blob)
            descs.append((digest(blob), len(blob)))
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": descs[0][0], "size": descs[0][1]},
            "layers": [{"mediaType": OCI_LAYER, "digest": d, "size": n} for d, n in descs[1:]],
        }).encode()
        tag = f"t{self.seq}"
        await self.call(session, "manifest_put", "PUT", f"/v2/{repo}/manifests/{tag}", (201,),
                        manifest, {"Content-Type": OCI_MANIFEST})
        self.pushed.append(Pushed(repo, tag, digest(manifest), descs))
        if len(self.pushed) > 400:
            del self.pushed[:100]

    async def pull(self, session: aiohttp.ClientSession) -> None:
        if not self.pushed:
            return
        p = self.rng.choice(self.pushed[-200:])
        # Another client of this target may delete the manifest while this pull runs (it
        # picked an older push): a 404 then is the registry right, counted apart; a 404 for
        # a manifest nobody deleted is an error.
        resp, body = await self.call(session, "manifest_get", "GET",
                                     f"/v2/{p.repo}/manifests/{p.manifest_digest}", (200, 404),
                                     extra={"Accept": OCI_MANIFEST})
        if self.gone(resp, p, "manifest"):
            return
        if digest(body) != p.manifest_digest:
            raise RuntimeError(f"manifest {p.manifest_digest}: wrong body")
        for d, n in p.blobs:
            resp, data = await self.call(session, "blob_get", "GET",
                                         f"/v2/{p.repo}/blobs/{d}", (200, 404))
            if self.gone(resp, p, f"blob {d}"):
                return
            if len(data) != n:
                raise RuntimeError(f"blob {d}: {len(data)} bytes, wanted {n}")
        resp, _ = await self.call(session, "blob_head", "HEAD",
                                  f"/v2/{p.repo}/blobs/{p.blobs[0][0]}", (200, 404))
        self.gone(resp, p, "blob HEAD")

    def gone(self, resp: aiohttp.ClientResponse, p: Pushed, what: str) -> bool:
        """A 404 during a pull: True if a client deleted the manifest meanwhile, else an
        error is raised."""
        if resp.status != 404:
            return False
        if p.manifest_digest in self.deleted:
            self.counts["pull_raced_delete"] += 1
            return True
        raise RuntimeError(f"{what} of {p.repo}@{p.manifest_digest}: 404, never deleted")

    async def delete(self, session: aiohttp.ClientSession) -> None:
        if len(self.pushed) < 50:
            return
        p = self.pushed.pop(self.rng.randrange(len(self.pushed) - 40))  # an older one
        self.deleted.add(p.manifest_digest)
        await self.call(session, "manifest_delete", "DELETE",
                        f"/v2/{p.repo}/manifests/{p.manifest_digest}", (202,))

    async def tags(self, session: aiohttp.ClientSession) -> None:
        repo = f"soak/r{self.rng.randrange(self.args.repos)}"
        await self.call(session, "tag_list", "GET", f"/v2/{repo}/tags/list?n=100", (200, 404))

    async def one(self, session: aiohttp.ClientSession, n: int) -> None:
        if n % self.args.delete_every == 0:
            await self.delete(session)
        elif n % 10 == 0:
            await self.tags(session)
        elif n % 3 == 0:
            await self.push(session)
        else:
            await self.pull(session)

    async def run(self, until: float) -> None:
        timeout = aiohttp.ClientTimeout(total=300)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            n = 0

            async def client() -> None:
                nonlocal n
                while time.monotonic() < until:
                    n += 1
                    try:
                        await self.one(session, n)
                    except Exception as exc:  # counted and reported
                        self.errors[type(exc).__name__] += 1
                        if len(self.error_samples) < 5:
                            self.error_samples.append(str(exc)[:300])
                        await asyncio.sleep(0.5)

            await asyncio.gather(*(client() for _ in range(self.args.concurrency)))


def report(name: str, sampler: Sampler, work: Workload, args: argparse.Namespace) -> dict[str, Any]:
    after = [s for s in sampler.samples if s[0] >= args.warmup * 60]
    pss_slope = slope([(t / 60, p) for t, p, _, _, _ in after])
    rss_slope = slope([(t / 60, r) for t, _, r, _, _ in after])
    file_slope = slope([(t / 60, f) for t, _, _, _, f in after])
    return {
        "name": name, "samples": len(sampler.samples), "after_warmup": len(after),
        "first_pss": after[0][1] if after else None, "last_pss": after[-1][1] if after else None,
        "max_pss": max(s[1] for s in sampler.samples),
        "max_rss": max(s[2] for s in sampler.samples),
        "first_rss": after[0][2] if after else None, "last_rss": after[-1][2] if after else None,
        "pss_slope": pss_slope, "rss_slope": rss_slope,
        "pss_median_slope": median_slope([(t / 60, p) for t, p, _, _, _ in after]),
        "file_pss_slope": file_slope, "anon_pss_slope": pss_slope - file_slope,
        "first_file_pss": after[0][4] if after else None,
        "last_file_pss": after[-1][4] if after else None,
        "processes": sorted({s[3] for s in sampler.samples}),
        "requests": sum(v for k, v in work.counts.items() if k != "big_push"),
        "counts": dict(work.counts), "errors": dict(work.errors),
        "error_samples": work.error_samples,
        "passed": abs(pss_slope) < args.threshold,
        "series": [(round(t, 1), round(p, 1), round(r, 1), round(f, 1))
                   for t, p, r, _, f in sampler.samples],
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=2.0, help="minutes left out of the slope")
    p.add_argument("--interval", type=float, default=5.0, help="seconds between samples")
    p.add_argument("--threshold", type=float, default=0.5, help="|PSS slope| MiB/min that passes")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--repos", type=int, default=8)
    p.add_argument("--big-mib", type=int, default=16, help="size of the occasional big layer")
    p.add_argument("--big-every", type=int, default=25, help="every Nth push has a big layer")
    p.add_argument("--delete-every", type=int, default=15)
    p.add_argument("--gc-interval", type=float, default=60.0,
                   help="strata serve --gc-interval (0: no collection)")
    p.add_argument("--with-distribution", action="store_true")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    p.add_argument("--keep", action="store_true")
    p.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE",
                   help="an environment variable for strata serve (repeatable), e.g. "
                        "GLIBC_TUNABLES=glibc.malloc.mmap_threshold=131072")
    p.add_argument("--probe", type=Path, default=None, metavar="DIR",
                   help="run strata's workers under bench/memprobe (tracemalloc snapshots and "
                        "live objects per type into DIR; slows them: for finding, not figures)")
    p.add_argument("--probe-interval", type=float, default=60.0,
                   help="seconds between the probe's dumps")
    p.add_argument("--probe-frames", type=int, default=12,
                   help="tracemalloc frames (0: no tracing, the native and object figures only)")
    return p.parse_args(argv)


async def drive(loads: list[Workload], until: float) -> None:
    await asyncio.gather(*(w.run(until) for w in loads))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="strata-bench-soak-"))
    basic = "Basic " + b64encode(f"admin:{storm.PASSWORD}".encode()).decode()
    servers: list[tuple[Server, Workload]] = []
    strata = storm.strata_with_auth(workdir / "strata", args.workers)
    strata.argv[strata.argv.index("86400")] = f"{args.gc_interval:g}"  # collections run
    for item in args.server_env:
        name, _, value = item.partition("=")
        strata.env[name] = value
    if args.probe is not None:
        args.probe.mkdir(parents=True, exist_ok=True)
        probe = Path(__file__).resolve().parent / "memprobe"
        strata.env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(probe), strata.env.get("PYTHONPATH", os.environ.get("PYTHONPATH")))
            if p)
        strata.env["STRATA_MEMPROBE_DIR"] = str(args.probe.resolve())
        strata.env["STRATA_MEMPROBE_INTERVAL"] = str(args.probe_interval)
        strata.env["STRATA_MEMPROBE_FRAMES"] = str(args.probe_frames)
    servers.append((strata, Workload("strata", strata.base, basic, args, 1)))
    if args.with_distribution:
        (workdir / "dist").mkdir()
        dist = distribution_server(workdir / "dist")
        servers.append((dist, Workload("distribution", dist.base, None, args, 2)))
    load0 = os.getloadavg()
    started: list[Server] = []
    samplers: list[Sampler] = []
    try:
        for server, _ in servers:
            server.start()
            started.append(server)
        for server, _ in servers:
            sampler = Sampler(server.pid, args.interval)
            sampler.start()
            samplers.append(sampler)
        until = time.monotonic() + args.minutes * 60
        asyncio.run(drive([w for _, w in servers], until))
    finally:
        for s in samplers:
            s.stop()
        for server in started:
            server.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    rows = [report(server.name, sampler, work, args)
            for (server, work), sampler in zip(servers, samplers, strict=True)]
    load1 = os.getloadavg()
    print(f"soak: {args.minutes:g} min, {args.concurrency} clients per registry, samples every "
          f"{args.interval:g} s, slope after {args.warmup:g} min warm-up; strata --workers "
          f"{args.workers}, auth on; load average {load0[0]:.2f} at start, {load1[0]:.2f} at end")
    print("| target | PSS first / last / max (MiB) | PSS slope (MiB/min) | PSS median slope "
          "| RSS first / last / max (MiB) | RSS slope (MiB/min) | requests | big pushes "
          "| deletes | errors |")
    print("| --- | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['name']} | {r['first_pss']:.1f} / {r['last_pss']:.1f} / {r['max_pss']:.1f} "
              f"| {r['pss_slope']:+.3f} | {r['pss_median_slope']:+.3f} "
              f"| {r['first_rss']:.1f} / {r['last_rss']:.1f} / "
              f"{r['max_rss']:.1f} | {r['rss_slope']:+.3f} | {r['requests']} "
              f"| {r['counts'].get('big_push', 0)} | {r['counts'].get('manifest_delete', 0)} "
              f"| {sum(r['errors'].values())} |")
    for r in rows:
        print(f"{r['name']}: {json.dumps(r['counts'], sort_keys=True)}")
        if r["errors"]:
            print(f"{r['name']} errors: {r['errors']} {r['error_samples']}")
        print(f"{r['name']}: of the PSS slope, file-backed {r['file_pss_slope']:+.3f} MiB/min "
              f"({r['first_file_pss']:.1f} -> {r['last_file_pss']:.1f} MiB: code first run), "
              f"anonymous {r['anon_pss_slope']:+.3f}")
        verdict = "no growth" if r["passed"] else "GROWTH"
        print(f"{r['name']}: {verdict} (|PSS slope| {abs(r['pss_slope']):.3f} vs threshold "
              f"{args.threshold} MiB/min)")
    if args.json:
        args.json.write_text(json.dumps({"load": [load0, load1], "rows": rows}, indent=1))
    strata_row = rows[0]
    return 0 if strata_row["passed"] and not strata_row["errors"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
