#!/usr/bin/env python3
"""The fixed cost of one jailed RUN: ``run_in_sandbox`` of ``/bin/true`` on a busybox layer.

Run as root from the project's venv:  .venv/bin/python bench/jail_bench.py [--runs 30]

Prints the median and p90 wall time of one RUN and the CPU time it costs (the builder's own
plus its children's), so two trees can be compared A/B in the same run:
``.venv/bin/python bench/jail_bench.py`` in each worktree, interleaved.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "build"))

from build_support import APPLETS, GROUP, PASSWD  # noqa: E402

from strata.build import sandbox  # noqa: E402
from strata.build.sandbox import RunSpec, run_in_sandbox  # noqa: E402
from support.clients import require_static_busybox  # noqa: E402


def cpu() -> float:
    """Seconds of CPU of this process, its reaped children and the jail servers (which
    reap the jails) still running."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
    servers = getattr(sandbox, "_servers", None)
    for server in getattr(servers, "idle", ()):
        with open(f"/proc/{server.proc.pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        total += sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the jail needs namespaces and overlay mounts")
    work = Path(tempfile.mkdtemp(prefix="strata-jail-bench."))
    try:
        lower = work / "lower"
        for sub in ("bin", "etc", "tmp"):
            (lower / sub).mkdir(parents=True)
        shutil.copy2(require_static_busybox(), lower / "bin" / "busybox")
        for applet in APPLETS:
            (lower / "bin" / applet).symlink_to("busybox")
        (lower / "etc" / "passwd").write_text(PASSWD)
        (lower / "etc" / "group").write_text(GROUP)
        spec = RunSpec(("/bin/true",), ("PATH=/bin",))
        walls, cpus = [], []
        for n in range(args.runs + 1):  # the first one warms up (and starts any helper)
            c0, t0 = cpu(), time.monotonic()
            result = run_in_sandbox([lower], work / f"s{n}", spec)
            t1, c1 = time.monotonic(), cpu()
            assert result.exit_code == 0, result.output
            if n:
                walls.append((t1 - t0) * 1000)
                cpus.append((c1 - c0) * 1000)
        walls.sort()
        with open("/proc/loadavg") as fh:
            load = " ".join(fh.read().split()[:3])
        print(f"one jailed RUN of /bin/true, {args.runs} runs, load {load}: "
              f"wall median {statistics.median(walls):.1f} ms, "
              f"p90 {walls[int(len(walls) * 0.9) - 1]:.1f} ms; "
              f"CPU median {statistics.median(cpus):.1f} ms")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
