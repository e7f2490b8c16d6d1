"""The machine's own limits, printed beside every bench run (issue #18).

* sha256 rate: ``hashlib.sha256`` over 256 MiB fed in 1 MiB pieces (what a registry must do to
  every pushed byte);
* durable disk write rate: 256 MiB written and ``fdatasync``ed in the given directory's
  filesystem (a strata 201 waits for this);
* loopback throughput: a 256 MiB file sent with ``sendfile`` over a TCP socket on 127.0.0.1 to
  a reader that discards it (what any server on this machine can push to a local client);
* nginx's storm throughput: read from the last ``bench/storm.py`` result
  (``bench/results/storm-latest.json``), measured with the same load generator.

Each registry figure then also reads as a fraction of these. Every figure is taken with the
load average beside it: on a shared machine they move from run to run.

    .venv/bin/python bench/limits.py [--dir DIR] [--mib 256] [--json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import mmap
import os
import socket
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

MIB = 1 << 20
RESULTS = Path(__file__).resolve().parent / "results"
STORM_RESULT = RESULTS / "storm-latest.json"


@dataclass(frozen=True)
class Limits:
    sha256_mib_s: float
    disk_mib_s: float
    loopback_mib_s: float
    nginx_pulls_s: float | None
    nginx_note: str
    load: tuple[float, float, float]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        nginx = (f"{self.nginx_pulls_s:.1f} pulls/s ({self.nginx_note})"
                 if self.nginx_pulls_s is not None else f"n/a ({self.nginx_note})")
        return (f"machine limits: sha256 {self.sha256_mib_s:.0f} MiB/s, durable disk write "
                f"{self.disk_mib_s:.0f} MiB/s, loopback sendfile {self.loopback_mib_s:.0f} MiB/s, "
                f"nginx storm {nginx}; load {self.load[0]:.1f} {self.load[1]:.1f} "
                f"{self.load[2]:.1f}")


def sha256_mib_s(mib: int = 256) -> float:
    block = os.urandom(MIB)
    h = hashlib.sha256()
    t0 = time.perf_counter()
    for _ in range(mib):
        h.update(block)
    h.hexdigest()
    return mib / (time.perf_counter() - t0)


def disk_write_mib_s(directory: Path, mib: int = 256) -> float:
    """Durable write speed (write + fdatasync) of *directory*'s filesystem, MiB/s."""
    path = directory / f"disk-probe-{os.getpid()}"
    block = os.urandom(MIB)
    os.sync()
    t0 = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for _ in range(mib):
            os.write(fd, block)
        os.fdatasync(fd)
    finally:
        os.close(fd)
        path.unlink()
    return mib / (time.perf_counter() - t0)


def disk_direct_write_mib_s(directory: Path, mib: int = 256, block_mib: int = 2) -> float:
    """Durable write speed with ``O_DIRECT`` (what strata's filesystem store uses for big
    bodies): *mib* MiB written from one reused page-aligned buffer, then ``fdatasync``; MiB/s.
    0.0 where the filesystem refuses ``O_DIRECT``."""
    path = directory / f"disk-direct-probe-{os.getpid()}"
    data = os.urandom(block_mib * MIB)
    buf = mmap.mmap(-1, block_mib * MIB)
    os.sync()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_DIRECT, 0o600)
    except OSError:
        return 0.0
    t0 = time.perf_counter()
    try:
        for _ in range(mib // block_mib):
            buf[:] = data  # the copy strata makes into its aligned buffer
            os.write(fd, buf)
        os.fdatasync(fd)
    finally:
        os.close(fd)
        path.unlink()
    return mib / (time.perf_counter() - t0)


def loopback_sendfile_mib_s(directory: Path, mib: int = 256, rounds: int = 2) -> float:
    """``sendfile`` of a *mib* MiB file over TCP on 127.0.0.1 (page-cached), best of *rounds*."""
    path = directory / f"loopback-probe-{os.getpid()}"
    block = os.urandom(MIB)
    with path.open("wb") as f:
        for _ in range(mib):
            f.write(block)
    size = mib * MIB
    best = 0.0
    try:
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen(1)
            port = listener.getsockname()[1]
            for _ in range(rounds):
                got = [0]

                def reader(got: list[int] = got) -> None:
                    buf = bytearray(1 << 20)
                    view = memoryview(buf)
                    with socket.create_connection(("127.0.0.1", port)) as c:
                        while True:
                            n = c.recv_into(view)
                            if not n:
                                break
                            got[0] += n

                t = threading.Thread(target=reader)
                t.start()
                conn, _ = listener.accept()
                with conn, path.open("rb") as f:
                    t0 = time.perf_counter()
                    conn.sendfile(f)
                    conn.shutdown(socket.SHUT_WR)
                    t.join()
                    secs = time.perf_counter() - t0
                if got[0] != size:
                    raise RuntimeError(f"loopback probe received {got[0]} of {size} bytes")
                best = max(best, mib / secs)
    finally:
        path.unlink()
    return best


def nginx_storm() -> tuple[float | None, str]:
    try:
        data = json.loads(STORM_RESULT.read_text())
    except (OSError, ValueError):
        return None, "no bench/storm.py result yet"
    rows = [r for r in data.get("targets", []) if r.get("name") == "nginx"]
    if not rows:
        return None, "last storm.py run had no nginx row"
    # the storm proper: the most clients (runs since 8,200 carry their client count)
    row = max(rows, key=lambda r: (r.get("clients", data.get("clients", 0)), r["pulls_s"]))
    return float(row["pulls_s"]), (f"storm.py {data.get('when', '?')}, "
                                   f"{row.get('clients', data.get('clients'))} clients, "
                                   f"load {row.get('load_at_start', ['?'])[0]}")


def measure(directory: Path, mib: int = 256, nginx_pulls_s: float | None = None,
            nginx_note: str = "") -> Limits:
    load = os.getloadavg()
    if nginx_pulls_s is None:
        nginx_pulls_s, nginx_note = nginx_storm()
    return Limits(sha256_mib_s=round(sha256_mib_s(mib), 1),
                  disk_mib_s=round(disk_write_mib_s(directory, mib), 1),
                  loopback_mib_s=round(loopback_sendfile_mib_s(directory, mib), 1),
                  nginx_pulls_s=nginx_pulls_s, nginx_note=nginx_note,
                  load=(round(load[0], 2), round(load[1], 2), round(load[2], 2)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, default=None,
                        help="directory on the filesystem to probe (default: $TMPDIR)")
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a line")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="strata-limits-", dir=args.dir) as tmp:
        limits = measure(Path(tmp), args.mib)
    print(json.dumps(limits.to_json()) if args.json else limits.line())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
