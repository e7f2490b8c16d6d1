"""The release-day pull storm (issue #18): N clients pull the same new image at once.

Each client does what ``podman pull`` does for a release: a token from ``/auth/token`` (a new
one per pull, as every ``podman pull`` process fetches its own), the manifest by tag, the
config, then the layers (5 of ~6 MiB: a ~30 MiB image all clients share). The load generator
is ``stormgen.py`` (one process per CPU, each connection walks its own pulls; ``--generator
wrk``: Debian's ``wrk`` with ``storm.lua``). Targets, one after the other, on the same image:

* ``strata``: ``strata serve --workers 2`` with authentication on (token with Basic
  credentials, then Bearer on every ``/v2/`` request);
* ``distribution``: Debian's ``docker-registry`` (2.8) as ``bench/servers.py`` runs it, open
  (no token service: its clients skip the token request);
* ``nginx``: the same blob files (symlinks to strata's), the manifest and a static token
  served by nginx with ``sendfile``: the ceiling no registry on this machine can pass.

Reported per target: pulls/s, per-pull p50/p99 (s), per-request p50/p99 (wrk), errors (must
be 0), server CPU (utime+stime of the server's process tree from /proc), the load generator's
CPU (rusage of wrk), peak PSS and RSS of the server's process tree (smaps_rollup, sampled every
``--pss-interval`` s), and ratios vs nginx and vs distribution. The machine's limits
(``limits.py``) and the load average are printed beside the table.

    .venv/bin/python bench/storm.py                 # 8 then 200 clients, 60 s per target
    .venv/bin/python bench/storm.py --quick         # 8 then 50 clients, 10 s per target
    .venv/bin/python bench/storm.py --targets strata,nginx --clients 100 --duration 30
    .venv/bin/python bench/storm.py --targets nginx,strata --base-src /tmp/base/src --rounds 3
                                                    # A/B: this strata and another checkout's

Every target runs at each client count of ``--clients`` (default ``8,200``): with 8 clients
the per-request cost of a registry shows (nginx is idle between requests), with 200 the
machine's loopback and CPU limits do; ``--rounds`` repeats the targets interleaved in time,
and each row's ratios are against the nginx (and distribution) row of the same client count
and round.
"""

from __future__ import annotations

import argparse
import contextlib
import grp
import hashlib
import http.client
import json
import os
import pwd
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from base64 import b64encode
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import limits
import procmem
from servers import REPO_ROOT, Server, distribution_server, free_port

MIB = 1 << 20
HERE = Path(__file__).resolve().parent
LUA = HERE / "storm.lua"
REPO = "bench/storm"
TAG = "release"
PASSWORD = "storm-bench-password"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
CLK_TCK = os.sysconf("SC_CLK_TCK")

NGINX_CONF = """\
user {user} {group};
worker_processes {workers};
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log error;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
  client_body_temp_path {dir}/tmp/body;
  proxy_temp_path {dir}/tmp/proxy;
  fastcgi_temp_path {dir}/tmp/fastcgi;
  uwsgi_temp_path {dir}/tmp/uwsgi;
  scgi_temp_path {dir}/tmp/scgi;
  # reuseport: connections spread over the workers by hash, as strata's (SO_REUSEPORT);
  # without it one worker accepted all 8 connections of an 8-client run (CPU 37.6 / 0.0 s)
  server {{
    listen 127.0.0.1:{port} reuseport;
    root {dir}/root;
    location /v2/ {{ types {{ }} default_type application/octet-stream; }}
    location ~ /manifests/ {{ types {{ }} default_type {manifest_type}; }}
    location = /auth/token {{ types {{ }} default_type application/json; }}
  }}
}}
"""


@dataclass(frozen=True)
class Image:
    manifest: bytes
    config: bytes
    layers: tuple[bytes, ...]

    @property
    def blobs(self) -> tuple[bytes, ...]:
        return (self.config, *self.layers)

    @property
    def size(self) -> int:
        return sum(len(b) for b in self.blobs)


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def make_image(layers: int, layer_bytes: int) -> Image:
    # distinct sizes: storm.lua recognises each answer by its length
    blobs = tuple(os.urandom(layer_bytes + 512 * i) for i in range(layers))
    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [digest(b) for b in blobs]},
    }).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": digest(config), "size": len(config)},
        "layers": [{"mediaType": OCI_LAYER, "digest": digest(b), "size": len(b)} for b in blobs],
    }).encode()
    return Image(manifest, config, blobs)


def push(base: str, image: Image, auth: str | None) -> None:
    """Monolithic POST + PUT per blob, then the manifest by tag (http.client, one connection)."""
    url = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=120)
    headers = {"Authorization": auth} if auth else {}

    def call(method: str, path: str, body: bytes | None = None,
             extra: dict[str, str] | None = None) -> http.client.HTTPResponse:
        conn.request(method, path, body=body, headers={**headers, **(extra or {})})
        resp = conn.getresponse()
        resp.read()
        if resp.status >= 300:
            raise RuntimeError(f"{method} {path}: HTTP {resp.status}")
        return resp

    for blob in image.blobs:
        loc = call("POST", f"/v2/{REPO}/blobs/uploads/").headers["Location"]
        loc = urllib.parse.urlsplit(loc)
        sep = "&" if loc.query else "?"
        path = f"{loc.path}?{loc.query}" if loc.query else loc.path
        call("PUT", f"{path}{sep}digest={digest(blob)}", blob,
             {"Content-Type": "application/octet-stream"})
    call("PUT", f"/v2/{REPO}/manifests/{TAG}", image.manifest, {"Content-Type": OCI_MANIFEST})
    conn.close()


def strata_with_auth(workdir: Path, workers: int, name: str = "strata",
                     src: Path | None = None) -> Server:
    """``strata serve`` with auth on; with *src*, the strata package of another checkout's
    ``src`` (``PYTHONPATH`` comes before the venv's editable install): A/B runs."""
    data = workdir / f"{name}-data"
    data.mkdir(parents=True)
    exe = Path(sys.executable).with_name("strata")
    if not exe.exists():
        exe = REPO_ROOT / ".venv" / "bin" / "strata"
    port = free_port()
    argv = [str(exe), "serve", "--data", str(data), "--listen", f"127.0.0.1:{port}",
            "--workers", str(workers), "--no-access-log", "--gc-interval", "86400"]
    env = {"STRATA_ADMIN_PASSWORD": PASSWORD}
    if src is not None:
        env["PYTHONPATH"] = str(src.resolve())
    return Server(name, argv, port, data, workdir / f"{name}.log", env=env)


def nginx_server(workdir: Path, image: Image, blob_paths: dict[str, Path],
                 workers: int) -> Server:
    top = workdir / "nginx"
    root = top / "root"
    blobs = root / "v2" / REPO / "blobs"
    manifests = root / "v2" / REPO / "manifests"
    for d in (blobs, manifests, root / "auth", top / "tmp"):
        d.mkdir(parents=True, exist_ok=True)
    (root / "v2" / "index.html").write_text("{}")
    (manifests / TAG).write_bytes(image.manifest)
    (root / "auth" / "token").write_text(json.dumps({"token": "static", "expires_in": 300}))
    for blob in image.blobs:
        d = digest(blob)
        src = blob_paths.get(d)
        if src is not None and src.exists():
            (blobs / d).symlink_to(src)  # the very files strata serves
        else:
            (blobs / d).write_bytes(blob)
    port = free_port()
    conf = top / "nginx.conf"
    # As root, nginx's workers would run as nobody and not reach the owner-only data dirs.
    conf.write_text(NGINX_CONF.format(user=pwd.getpwuid(os.geteuid()).pw_name,
                                      group=grp.getgrgid(os.getegid()).gr_name,
                                      workers=workers, dir=top, port=port,
                                      manifest_type=OCI_MANIFEST))
    exe = shutil.which("nginx") or "/usr/sbin/nginx"
    return Server("nginx", [exe, "-p", str(top), "-c", str(conf), "-e",
                            str(top / "nginx-error.log")], port, root, top / "nginx.log")


def strata_blob_paths(data: Path, image: Image) -> dict[str, Path]:
    out = {}
    for blob in image.blobs:
        hexd = digest(blob).split(":", 1)[1]
        path = data / "blobs" / "sha256" / hexd[:2] / hexd
        if path.exists():
            out[digest(blob)] = path
    return out


def process_cpu_s(root: int) -> dict[int, float]:
    """utime+stime of each process of the tree, by pid."""
    out = {}
    for pid in procmem.descendants(root):
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = Path(f"/proc/{pid}/stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            out[pid] = (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime
    return out


def tree_cpu_s(root: int) -> float:
    return sum(process_cpu_s(root).values())


def _kib(path: str, key: str) -> int:
    with contextlib.suppress(OSError, ValueError):
        for line in Path(path).read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


@dataclass
class MemSampler:
    """Peak summed PSS (smaps_rollup) and RSS of a process tree, sampled in a thread."""

    root: int
    interval: float
    peak_pss: int = 0
    peak_rss: int = 0
    samples: int = 0
    series: list[tuple[float, float]] = field(default_factory=list)  # (s since start, PSS MiB)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _t0: float = 0.0

    def sample(self) -> None:
        pids = procmem.descendants(self.root)
        pss = sum(_kib(f"/proc/{p}/smaps_rollup", "Pss") for p in pids) * 1024
        rss = sum(_kib(f"/proc/{p}/status", "VmRSS") for p in pids) * 1024
        self.peak_pss, self.peak_rss = max(self.peak_pss, pss), max(self.peak_rss, rss)
        self.samples += 1
        now = time.monotonic()
        if not self.series:
            self._t0 = now
        self.series.append((round(now - self._t0, 2), round(pss / (1 << 20), 1)))

    def __enter__(self) -> MemSampler:
        def run() -> None:
            while not self._stop.wait(self.interval):
                self.sample()
        self.sample()
        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()


def run_wrk(base: str, image: Image, clients: int, threads: int, duration: int,
            token_path: str, auth: str, out: Path) -> tuple[dict[str, Any], float]:
    exe = shutil.which("wrk")
    if exe is None:
        raise RuntimeError("wrk is not installed (Debian package 'wrk')")
    env = {**os.environ, "STORM_REPO": REPO, "STORM_TAG": TAG, "STORM_TOKEN_PATH": token_path,
           "STORM_AUTH": auth, "STORM_OUT": str(out),
           "STORM_MANIFEST_SIZE": str(len(image.manifest)),
           "STORM_BLOBS": ",".join(f"{digest(b)}:{len(b)}" for b in image.blobs)}
    argv = [exe, f"-t{min(threads, clients)}", f"-c{clients}", f"-d{duration}s", "--timeout", "60s",
            "-s", str(LUA), base]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(argv, capture_output=True, text=True, env=env,
                          timeout=duration + 120)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr or proc.stdout}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return json.loads(out.read_text()), cpu


def run_python(base: str, image: Image, clients: int, procs: int, duration: int,
               token_path: str, auth: str, out: Path) -> tuple[dict[str, Any], float]:
    """``procs`` stormgen.py processes sharing ``clients`` connections; the wrk JSON's shape."""
    url = urllib.parse.urlsplit(base)
    procs = max(1, min(procs, clients))
    blobs = ",".join(f"{digest(b)}:{len(b)}" for b in image.blobs)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    running = []
    for i in range(procs):
        share = clients // procs + (1 if i < clients % procs else 0)
        argv = [sys.executable, str(HERE / "stormgen.py"), "--host", str(url.hostname),
                "--port", str(url.port), "--clients", str(share), "--duration", str(duration),
                "--repo", REPO, "--tag", TAG, "--token-path", token_path, "--auth", auth,
                "--manifest-size", str(len(image.manifest)), "--blobs", blobs]
        running.append(subprocess.Popen(argv, stdout=subprocess.PIPE, text=True))
    parts = []
    for proc in running:
        text, _ = proc.communicate(timeout=duration + 120)
        if proc.returncode != 0:
            raise RuntimeError(f"stormgen.py failed ({proc.returncode})")
        parts.append(json.loads(text))
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    reqs = [x for part in parts for x in part["requests"]]
    res = {"pulls": sum(len(p["pulls"]) for p in parts),
           "errors": sum(p["errors"] for p in parts), "requests": len(reqs),
           "bytes": sum(p["bytes"] for p in parts), "duration_us": duration * 1_000_000,
           "socket_errors": 0, "timeouts": 0, "step_counts": [],
           "request_ms": {str(q): round(pct(reqs, q) * 1000, 1) for q in (50, 90, 99)},
           "samples": [s for p in parts for s in p["samples"]][:5],
           "pull_seconds": [x for p in parts for x in p["pulls"]]}
    out.write_text(json.dumps({k: v for k, v in res.items() if k != "pull_seconds"}))
    return res, cpu


def pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, round(q / 100 * (len(values) - 1)))]


def storm(server: Server, image: Image, args: argparse.Namespace, workdir: Path,
          token_path: str, auth: str, clients: int) -> dict[str, Any]:
    print(f"storm: {server.name} ({clients} clients, {args.duration} s) ...",
          file=sys.stderr, flush=True)
    # warm-up: a few pulls (page cache, connection pools, worker start), not measured
    gen = run_python if args.generator == "python" else run_wrk
    gen(server.base, image, min(4, clients), min(4, args.threads), 2, token_path,
        auth, workdir / "warm.json")
    os.sync()
    load = os.getloadavg()
    per0 = process_cpu_s(server.pid)
    cpu0 = sum(per0.values())
    t0 = time.monotonic()
    with MemSampler(server.pid, args.pss_interval) as mem:
        res, wrk_cpu = gen(server.base, image, clients, args.threads, args.duration,
                           token_path, auth, workdir / f"{server.name}.json")
    wall = time.monotonic() - t0
    per1 = process_cpu_s(server.pid)
    server_cpu = sum(per1.values()) - cpu0
    # how the work fell on the server's processes (SO_REUSEPORT spreads connections by hash)
    split = sorted((round(v - per0.get(pid, 0.0), 1) for pid, v in per1.items()), reverse=True)
    secs = res["duration_us"] / 1e6
    # per-pull times mean something only when each connection has its own thread
    pulls = res["pull_seconds"] if (args.generator == "python"
                                    or args.threads >= clients) else []
    errors = res["errors"] + res["socket_errors"] + res["timeouts"]
    return {
        "name": server.name, "clients": clients, "pulls": res["pulls"],
        "pulls_s": round(res["pulls"] / secs, 2),
        "mib_s": round(res["bytes"] / MIB / secs, 1),
        "pull_p50_s": round(pct(pulls, 50), 3), "pull_p99_s": round(pct(pulls, 99), 3),
        "pull_mean_s": round(statistics.fmean(pulls), 3) if pulls else 0.0,
        "request_p50_ms": res["request_ms"]["50"], "request_p99_ms": res["request_ms"]["99"],
        "requests": res["requests"], "step_counts": res["step_counts"], "errors": errors,
        "error_samples": res["samples"],
        "server_cpu_s": round(server_cpu, 1), "server_cpu_split_s": split,
        "server_cpu_cores": round(server_cpu / wall, 2),
        "wrk_cpu_s": round(wrk_cpu, 1), "wrk_cpu_cores": round(wrk_cpu / wall, 2),
        "peak_pss_mib": round(mem.peak_pss / MIB, 1), "peak_rss_mib": round(mem.peak_rss / MIB, 1),
        "mem_samples": mem.samples, "processes": len(procmem.descendants(server.pid)),
        "load_at_start": [round(x, 2) for x in load],
    }


def pull_p50_p99(r: dict[str, Any]) -> str:
    if not r["pull_mean_s"]:
        return "- (see --thread-per-client)"
    return f"{r['pull_p50_s']:.2f} / {r['pull_p99_s']:.2f}"


def table(rows: list[dict[str, Any]]) -> str:
    """One line per target run; ratios against nginx and distribution of the same client
    count and round (runs interleaved in time, so a ratio compares like with like)."""
    def ratio(r: dict[str, Any], other: str) -> str:
        o = next((x for x in rows if x["name"] == other and x["clients"] == r["clients"]
                  and x["round"] == r["round"]), None)
        return f"{r['pulls_s'] / o['pulls_s']:.2f}x" if o and o["pulls_s"] else "-"

    def p99_ratio(r: dict[str, Any]) -> str:
        o = next((x for x in rows if x["name"] == "nginx" and x["clients"] == r["clients"]
                  and x["round"] == r["round"]), None)
        return f"{r['pull_p99_s'] / o['pull_p99_s']:.2f}x" if o and o["pull_p99_s"] else "-"

    out = ["| clients | target | pulls/s | MiB/s | pull p50 / p99 (s) | request p50 / p99 (ms) "
           "| errors | server CPU (cores) | CPU s by process | server CPU ms/pull "
           "| load gen CPU (cores) "
           "| peak PSS / RSS (MiB) | vs nginx | p99 vs nginx | vs distribution | load |",
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- "
           "| --- | --- | --- |"]
    for r in rows:
        per_pull = 1000 * r["server_cpu_s"] / r["pulls"] if r["pulls"] else 0.0
        out.append(
            f"| {r['clients']} | {r['name']} | {r['pulls_s']:.1f} | {r['mib_s']:.0f} "
            f"| {pull_p50_p99(r)} "
            f"| {r['request_p50_ms']:.0f} / {r['request_p99_ms']:.0f} | {r['errors']} "
            f"| {r['server_cpu_cores']:.2f} "
            f"| {' / '.join(f'{x:.1f}' for x in r['server_cpu_split_s'])} "
            f"| {per_pull:.1f} | {r['wrk_cpu_cores']:.2f} "
            f"| {r['peak_pss_mib']:.0f} / {r['peak_rss_mib']:.0f} ({r['processes']} proc) "
            f"| {ratio(r, 'nginx')} | {p99_ratio(r)} | {ratio(r, 'distribution')} "
            f"| {r['load_at_start'][0]:.1f} |")
    return "\n".join(out)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", default="8,200",
                   help="client counts, comma separated: each count runs every target "
                        "(few clients show per-request cost, many the machine's limits)")
    p.add_argument("--duration", type=int, default=60, help="seconds per target")
    p.add_argument("--rounds", type=int, default=1,
                   help="repeat the targets (interleaved) this many times per client count")
    p.add_argument("--quick", action="store_true", help="8 and 50 clients, 10 s per target")
    p.add_argument("--targets", default="nginx,strata,distribution")
    p.add_argument("--base-src", type=Path, action="append", default=[],
                   help="A/B: also run 'strata-base', the strata of another checkout's src "
                        "dir (e.g. a 'git worktree add /tmp/base main'), interleaved with "
                        "strata; given again: 'strata-base2', ...")
    p.add_argument("--generator", choices=("python", "wrk"), default="python",
                   help="python: stormgen.py processes (bodies into one reused buffer); "
                        "wrk: wrk + storm.lua (its Lua body hand-off costs ~4x plain wrk's "
                        "CPU per byte)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 2,
                   help="load generator processes (python) or wrk threads (default: CPUs); "
                        "the connections of a wrk thread share one request sequence")
    p.add_argument("--thread-per-client", action="store_true",
                   help="one wrk thread per connection: each walks whole pulls, per-pull "
                        "times measured (N threads: heavy on a small machine)")
    p.add_argument("--workers", type=int, default=2, help="strata serve --workers")
    p.add_argument("--nginx-workers", type=int, default=2)
    p.add_argument("--layers", type=int, default=5)
    p.add_argument("--layer-mib", type=float, default=6.0)
    p.add_argument("--pss-interval", type=float, default=1.0)
    p.add_argument("--no-limits", action="store_true", help="skip limits.py's probes")
    p.add_argument("--keep", action="store_true", help="keep the work dir")
    args = p.parse_args(argv)
    if args.quick:
        args.clients, args.duration = "8,50", 10
    args.client_counts = [int(c) for c in str(args.clients).split(",") if c.strip()]
    if args.thread_per_client:
        if args.generator != "wrk":
            p.error("--thread-per-client is for --generator wrk")
        args.threads = max(args.client_counts)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    bases = {("strata-base" if i == 0 else f"strata-base{i + 1}"): src
             for i, src in enumerate(args.base_src)}
    for name in reversed(bases):
        if name not in targets:
            targets.insert(targets.index("strata") + 1 if "strata" in targets
                           else len(targets), name)
    workdir = Path(tempfile.mkdtemp(prefix="strata-bench-storm-"))
    image = make_image(args.layers, int(args.layer_mib * MIB))
    basic = "Basic " + b64encode(f"admin:{PASSWORD}".encode()).decode()
    strata = strata_with_auth(workdir, args.workers)
    base_servers = [strata_with_auth(workdir, args.workers, name, src)
                    for name, src in bases.items()]
    dist = distribution_server(workdir)
    rows: list[dict[str, Any]] = []
    started: list[Server] = []
    try:
        for s, auth in ((strata, basic), *((b, basic) for b in base_servers), (dist, None)):
            if s.name in targets or (s is strata and "nginx" in targets):
                s.start()
                started.append(s)
                push(s.base, image, auth)
        nginx = nginx_server(workdir, image, strata_blob_paths(strata.data_dir, image),
                             args.nginx_workers)
        if "nginx" in targets:
            nginx.start()
            started.append(nginx)
        token = f"/auth/token?service=strata&scope=repository:{REPO}:pull"
        plan = {"nginx": (nginx, "/auth/token", ""), "strata": (strata, token, basic),
                "distribution": (dist, "", ""),
                **{b.name: (b, token, basic) for b in base_servers}}
        for clients in args.client_counts:
            for rnd in range(args.rounds):
                for name in targets:
                    server, token_path, auth = plan[name]
                    row = storm(server, image, args, workdir, token_path, auth, clients)
                    row["round"] = rnd + 1
                    rows.append(row)
    finally:
        for s in started:
            s.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    nginx_rows = [r for r in rows if r["name"] == "nginx"]
    nginx_row = max(nginx_rows, key=lambda r: (r["clients"], r["pulls_s"]), default=None)
    lim = None
    if not args.no_limits:
        with tempfile.TemporaryDirectory(prefix="strata-limits-") as tmp:
            lim = limits.measure(Path(tmp), nginx_pulls_s=nginx_row["pulls_s"] if nginx_row
                                 else None,
                                 nginx_note=f"this run, {nginx_row['clients']} clients"
                                 if nginx_row else "")
    result = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "clients": max(args.client_counts), "client_counts": args.client_counts,
              "duration_s": args.duration, "rounds": args.rounds,
              "image_mib": round(image.size / MIB, 1), "layers": args.layers,
              "strata_workers": args.workers, "targets": rows,
              "load_at_start": rows[0]["load_at_start"] if rows else None,
              "limits": lim.to_json() if lim else None}
    limits.RESULTS.mkdir(exist_ok=True)
    if nginx_row is not None:
        limits.STORM_RESULT.write_text(json.dumps(result, indent=1))
    (limits.RESULTS / "storm-last-run.json").write_text(json.dumps(result, indent=1))
    print(f"pull storm: {args.clients} clients x {args.duration} s per target, "
          f"{args.rounds} round(s), image {image.size / MIB:.1f} MiB ({args.layers} layers + "
          f"config), strata --workers {args.workers} with auth; load generator "
          f"{args.generator} x {args.threads}; load average at each start in the last column")
    print(table(rows))
    if lim is not None:
        print(lim.line())
    bad = [f"{r['name']} ({r['clients']} clients)" for r in rows
           if r["errors"] or not r["pulls"]]
    for r in rows:
        if r["error_samples"]:
            print(f"{r['name']} ({r['clients']} clients) errors: {r['error_samples']}")
    if bad:
        print(f"ERRORS: {', '.join(bad)}")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
