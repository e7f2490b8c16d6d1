"""Run Debian's ``wrk`` and parse its ``--latency`` report."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_LAT = re.compile(r"^\s*(50|75|90|99)(?:\.\d+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.M)
_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.M)
_TOTAL = re.compile(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h)", re.M)
_NON2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKERR = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")



@dataclass
class WrkResult:
    rps: float
    requests: int
    p50_ms: float
    p75_ms: float
    p90_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def parse(text: str) -> WrkResult:
    lat = {int(p): float(v) * _UNITS[u] for p, v, u in _LAT.findall(text)}
    rps = _RPS.search(text)
    total = _TOTAL.search(text)
    if rps is None or total is None or 99 not in lat:
        raise ValueError(f"cannot parse wrk output:\n{text}")
    non2xx = _NON2XX.search(text)
    sock = _SOCKERR.search(text)
    return WrkResult(rps=float(rps.group(1)), requests=int(total.group(1)),
                     p50_ms=lat.get(50, 0.0), p75_ms=lat.get(75, 0.0), p90_ms=lat.get(90, 0.0),
                     p99_ms=lat[99], non_2xx=int(non2xx.group(1)) if non2xx else 0,
                     socket_errors=sum(map(int, sock.groups())) if sock else 0)


def run(url: str, *, connections: int, duration: float, threads: int,
        headers: dict[str, str] | None = None, method: str = "GET",
        timeout_s: float = 5.0) -> WrkResult:
    exe = shutil.which("wrk")
    if exe is None:
        raise RuntimeError("wrk is not installed (Debian package 'wrk')")
    threads = max(1, min(threads, connections))
    seconds = max(1, round(duration))  # wrk takes whole time units only
    argv = [exe, f"-t{threads}", f"-c{connections}", f"-d{seconds}s",
            f"--timeout={max(1, round(timeout_s))}s", "--latency"]
    for k, v in (headers or {}).items():
        argv += ["-H", f"{k}: {v}"]
    with tempfile.TemporaryDirectory(prefix="strata-bench-wrk-") as tmp:
        if method != "GET":
            script = Path(tmp) / "method.lua"
            script.write_text(f'wrk.method = "{method}"\n')
            argv += ["-s", str(script)]
        argv.append(url)
        proc = subprocess.run(argv, capture_output=True, text=True,
                              timeout=seconds + timeout_s + 30)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr or proc.stdout}")
    return parse(proc.stdout)
