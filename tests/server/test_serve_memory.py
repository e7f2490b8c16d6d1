"""What keeps ``strata serve``'s memory down (issue #18; figures: bench/memory.py, soak.py).

* The parent serves as the first worker beside the ones it forked (no separate supervising
  process) and drops the library pages its imports faulted in; SIGTERM to it stops them all
  and it exits 0; a parent killed outright takes its workers with it.
* Workers use one malloc arena (``strata.server.malloc``), limited before any thread ran.
* (tests/unit/test_serve_imports.py: what a serving process does not import.)
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
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


def _rss_kib_of(pid: int, library: str) -> int:
    total, inside = 0, False
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split(" ", 1)[0]
        if "-" in head and not head.endswith(":"):
            inside = line.rstrip().endswith(library)
        elif inside and head == "Rss:":
            total += int(line.split()[1])
    return total


def test_parent_serves_as_the_first_worker_and_stops_the_others(tmp_path: Path) -> None:
    server = StrataServer(tmp_path, "--workers", "3").start()
    try:
        assert server.pid is not None
        workers = _children(server.pid)
        assert len(workers) == 2, workers  # the parent is the third
        # The parent dropped the library pages its imports faulted in (~9 MiB of
        # cryptography's _rust.abi3.so), which a forked worker maps only as it runs them.
        assert _rss_kib_of(server.pid, "_rust.abi3.so") < 4 * 1024
        answered = {server.request("GET", "/v2/", headers={"Connection": "close"}).status
                    for _ in range(12)}
        assert answered == {401}
        server._proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        assert server._proc.wait(30) == 0  # type: ignore[union-attr]
        assert not any(Path(f"/proc/{w}").exists() for w in workers)  # waited for
    finally:
        server.kill()


def test_workers_end_with_a_parent_killed_outright(tmp_path: Path) -> None:
    """SIGKILL gives the parent no chance to stop its workers: they get SIGTERM from the
    kernel (PR_SET_PDEATHSIG) and do not go on holding the port."""
    server = StrataServer(tmp_path, "--workers", "2").start()
    try:
        assert server.pid is not None
        workers = _children(server.pid)
        assert len(workers) == 1, workers
        server._proc.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
        server._proc.wait(30)  # type: ignore[union-attr]
        deadline = time.monotonic() + 15
        while _alive(workers[0]) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(workers[0])
    finally:
        server.kill()


def _alive(pid: int) -> bool:
    """Running (an exited, not yet reaped orphan is a zombie until init reaps it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def _private_dirty_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Private_Dirty:"):
            return int(line.split()[1])
    raise AssertionError(f"no Private_Dirty for {pid}")


def test_workers_serve_the_app_built_before_the_fork(tmp_path: Path) -> None:
    """The app (stores, auth with its argon2 dummy hash, routes, metrics) is built once in the
    parent and shared copy-on-write: a worker that has started and answered has written few
    pages of its own (13-15 MiB; 18-21 MiB when each worker built its own app), and both workers
    still serve logins and writes with database connections of their own."""
    server = StrataServer(tmp_path, "--workers", "2").start()
    try:
        assert server.pid is not None
        workers = _children(server.pid)
        assert len(workers) == 1, workers
        workers.append(server.pid)
        private = [_private_dirty_kib(w) for w in workers]
        assert all(kib < 17 * 1024 for kib in private), private  # was 18-21 MiB
        auth = "Basic " + base64.b64encode(f"admin:{server.admin_password}".encode()).decode()
        for n in range(8):  # connections spread over both workers (SO_REUSEPORT)
            resp = server.request("GET", "/auth/token?service=strata&scope=repository:a/b:push",
                                  headers={"Authorization": auth, "Connection": "close"})
            assert resp.status == 200, (n, resp.status)
            token = json.loads(resp.body)["token"]
            resp = server.request("POST", "/v2/a/b/blobs/uploads/",
                                  headers={"Authorization": f"Bearer {token}",
                                           "Connection": "close"})
            assert resp.status == 202, (n, resp.status)
        # One malloc arena per worker: no glibc thread heap (an anonymous mapping at a 64 MiB
        # boundary running on, anonymous, to the next one) although the database writer and
        # the executor's threads have run (the POSTs' commits, the logins' argon2).
        assert {w: _thread_heaps(w) for w in workers} == {w: [] for w in workers}
    finally:
        server.kill()


_HEAP_MAX = 64 << 20  # glibc's HEAP_MAX_SIZE on 64-bit: a thread arena's heap, so aligned


def _thread_heaps(pid: int) -> list[str]:
    """Start addresses of glibc thread-arena heaps in ``pid``'s address space."""
    rows = []
    for line in _maps(pid).splitlines():
        parts = line.split()
        start, end = (int(x, 16) for x in parts[0].split("-"))
        rows.append((start, end, parts[5] if len(parts) > 5 else ""))
    heaps = []
    for i, (start, end, name) in enumerate(rows):
        if start % _HEAP_MAX or name:
            continue
        j = i + 1
        while end < start + _HEAP_MAX and j < len(rows) and rows[j][0] == end and not rows[j][2]:
            end = rows[j][1]
            j += 1
        if end == start + _HEAP_MAX:
            heaps.append(hex(start))
    return heaps


def test_as_pid_1_a_supervisor_reaps_orphans_and_stops_the_workers(tmp_path: Path) -> None:
    """In a container strata serve is PID 1, the init that the kernel hands every orphan of
    the namespace: there the parent forks all its workers and becomes the stdlib-only
    supervisor, which reaps whatever it is handed (elsewhere the parent is the first worker)."""
    ns = ["unshare", "--pid", "--fork", "--mount-proc"]
    if os.geteuid() != 0:
        ns[1:1] = ["--user", "--map-root-user"]
    server = StrataServer(tmp_path, "--workers", "2", wrapper=ns).start()
    proc = server._proc
    assert proc is not None
    try:
        (init,) = _children(proc.pid)
        cmdline = Path(f"/proc/{init}/cmdline").read_bytes().split(b"\0")
        assert any(arg.endswith(b"strata/server/supervise.py") for arg in cmdline), cmdline
        workers = _children(init)
        assert len(workers) == 2, workers
        # An orphan in the namespace: the shell exits at once, its sleep goes to PID 1.
        subprocess.run(["nsenter", "--target", str(init), "--pid", "--mount", "--",
                        "sh", "-c", "sleep 0.3 & exit 0"], check=True, timeout=30)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and set(_children(init)) - set(workers):
            time.sleep(0.05)
        assert set(_children(init)) == set(workers)  # the orphan ran, ended and was reaped
        os.kill(init, signal.SIGTERM)
        assert proc.wait(30) == 0
        assert not any(_alive(w) for w in workers)
    finally:
        server.kill()
