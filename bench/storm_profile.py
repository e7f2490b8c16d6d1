"""Where a pull-storm request's server CPU goes: py-spy on ``strata serve`` during the storm.

Starts strata with authentication on (``--workers``, default 2 as in ``storm.py``), pushes the
storm's image, then drives ``stormgen.py`` with ``--clients`` for ``--duration`` seconds while
``py-spy record --subprocesses --nonblocking`` samples the workers (start-up is not in the
window). Prints the server's CPU per pull and per request (utime+stime from /proc) and, for
the workers' event-loop threads, the inclusive share of the busy samples (idle ``epoll``
waits left out) of the strata frames and the aiohttp/asyncio frames that serve blobs,
then the top own-time frames. The raw collapsed stacks stay in
``bench/results/storm-profile.txt`` (flamegraph input).

py-spy is not a project dependency: install it in a venv of its own and pass its path:

    python3 -m venv /tmp/pyspy && /tmp/pyspy/bin/pip install py-spy
    .venv/bin/python bench/storm_profile.py --py-spy /tmp/pyspy/bin/py-spy --clients 8
    .venv/bin/python bench/storm_profile.py --py-spy /tmp/pyspy/bin/py-spy --clients 50
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from base64 import b64encode
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import limits
import storm

MIB = 1 << 20
_FRAME = re.compile(r"(.*?) \((.*?)(?::\d+)?\)$")


def frame_key(frame: str) -> str:
    m = _FRAME.match(frame)
    if not m:
        return frame
    path = m.group(2)
    short = "/".join(path.split("/")[-2:])
    return f"{m.group(1)} ({short})"


def summarize(raw: Path, top: int) -> str:
    incl: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    busy = idle = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if "run_worker" not in stack:
            continue  # only the workers' event-loop threads (executor threads start elsewhere)
        n = int(count)
        frames = [frame_key(f) for f in stack.split(";")[1:]]
        leaf = frames[-1] if frames else "?"
        if "Selector.select" in leaf or leaf.startswith("poll ("):
            idle += n
            continue
        busy += n
        own[leaf] += n
        for key in set(frames):
            incl[key] += n
    lines = [f"worker event-loop samples: {busy} busy, {idle} idle (epoll wait)",
             "inclusive share of busy samples:"]
    interesting = ("strata/", "aiohttp/", "asyncio/", "sqlite3", "jwt/", "argon2",
                   "cryptography", "futures/")
    shown = [(k, v) for k, v in incl.most_common() if any(s in k for s in interesting)
             and v < busy]
    lines += [f"  {100 * v / max(busy, 1):5.1f}%  {k}" for k, v in shown[:top]]
    lines.append("own time (leaf frames):")
    lines += [f"  {100 * v / max(busy, 1):5.1f}%  {k}" for k, v in own.most_common(top // 2)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--py-spy", default=shutil.which("py-spy") or "py-spy")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--duration", type=int, default=20)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 2,
                   help="load generator processes")
    p.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    p.add_argument("--top", type=int, default=50)
    p.add_argument("--layers", type=int, default=5)
    p.add_argument("--layer-mib", type=float, default=6.0)
    args = p.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="strata-storm-profile-"))
    limits.RESULTS.mkdir(exist_ok=True)
    raw = limits.RESULTS / "storm-profile.txt"
    image = storm.make_image(args.layers, int(args.layer_mib * MIB))
    basic = "Basic " + b64encode(f"admin:{storm.PASSWORD}".encode()).decode()
    server = storm.strata_with_auth(workdir, args.workers)
    token = f"/auth/token?service=strata&scope=repository:{storm.REPO}:pull"
    try:
        server.start(timeout=60)
        storm.push(server.base, image, basic)
        storm.run_python(server.base, image, min(4, args.clients), 1, 2, token, basic,
                         workdir / "warm.json")
        load = os.getloadavg()
        spy = subprocess.Popen(
            [args.py_spy, "record", "--pid", str(server.pid), "--subprocesses", "--threads",
             "--idle", "--nonblocking", "--format", "raw", "-r", str(args.rate),
             "-d", str(args.duration), "-o", str(raw)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(0.5)
        cpu0 = storm.tree_cpu_s(server.pid)
        res, gen_cpu = storm.run_python(server.base, image, args.clients, args.threads,
                                        args.duration - 1, token, basic, workdir / "out.json")
        cpu = storm.tree_cpu_s(server.pid) - cpu0
        _, err = spy.communicate(timeout=args.duration + 60)
        if spy.returncode != 0:
            print(f"py-spy failed: {err}", file=sys.stderr)
            return 1
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    pulls, reqs = res["pulls"], res["requests"]
    print(f"{args.clients} clients x {args.duration - 1} s, strata --workers {args.workers}, "
          f"load {load[0]:.1f}: {pulls} pulls ({pulls / (args.duration - 1):.1f}/s), {reqs} "
          f"requests, {res['errors']} errors; server CPU {cpu:.1f} s (py-spy attached) = "
          f"{1000 * cpu / max(pulls, 1):.1f} ms/pull, {1000 * cpu / max(reqs, 1):.2f} "
          f"ms/request; load generator {gen_cpu:.1f} s")
    print(summarize(raw, args.top))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
