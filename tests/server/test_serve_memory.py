"""What keeps ``strata serve``'s memory down (issue #18; figures: bench/memory.py, soak.py).

* Once its workers are forked, the parent is the stdlib-only supervisor
  (``strata/server/supervise.py``, via ``execv``): a few MiB, none of strata imported; the
  workers are still its children, SIGTERM to it stops them and it exits 0.
* (tests/unit/test_serve_imports.py: what a serving process does not import.)
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from support.server import StrataServer

pytestmark = pytest.mark.server


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2:].split()[1]) == pid:
                out.append(int(entry))
    return out


def _maps(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def test_parent_becomes_a_small_supervisor_of_its_workers(tmp_path: Path) -> None:
    server = StrataServer(tmp_path, "--workers", "2").start()
    try:
        assert server.pid is not None
        cmdline = Path(f"/proc/{server.pid}/cmdline").read_bytes().split(b"\0")
        assert any(arg.endswith(b"strata/server/supervise.py") for arg in cmdline), cmdline
        workers = _children(server.pid)
        assert len(workers) == 2, workers
        # The supervisor loaded no extension module of strata's dependencies; a worker did.
        assert "_rust.abi3.so" not in _maps(server.pid)
        assert all("_rust.abi3.so" in _maps(w) for w in workers)
        assert _status_kib(server.pid, "RssAnon") < 16 * 1024
        assert server.request("GET", "/v2/").status == 401
        server._proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        assert server._proc.wait(30) == 0  # type: ignore[union-attr]
        deadline = time.monotonic() + 10
        while any(Path(f"/proc/{w}").exists() for w in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(Path(f"/proc/{w}").exists() for w in workers)
    finally:
        server.kill()
