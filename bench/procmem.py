"""Resident memory of a process tree, read from /proc (Linux only).

``tree_rss`` sums VmRSS over a process and all its descendants (strata's workers are forked
children of the ``strata serve`` parent). ``RssSampler`` polls that sum in the background and
keeps the peak. Summed RSS counts the pages a forked worker still shares with its parent once
per process, so the sampler also keeps the peak summed PSS (shared pages split between their
sharers), and reads each process's VmHWM (kernel-tracked peak RSS) at the end, after resetting
it at the start through ``/proc/PID/clear_refs``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path


def _status_kib(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


def descendants(root: int) -> list[int]:
    """``root`` and every process below it (scans /proc: no ``children`` file needed)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        # pid (comm) state ppid ...; comm may contain spaces or parentheses.
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        parents.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(parents.get(pid, []))
    return out


CLK_TCK = os.sysconf("SC_CLK_TCK")


def tree_cpu_s(root: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process tree's live processes (threads included)."""
    user = system = 0.0
    for pid in descendants(root):
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = Path(f"/proc/{pid}/stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            user += int(fields[11]) / CLK_TCK
            system += int(fields[12]) / CLK_TCK
    return user, system


def _pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


def tree_rss(root: int) -> int:
    """Sum of VmRSS in bytes over ``root`` and its descendants."""
    return sum(_status_kib(pid, "VmRSS") for pid in descendants(root)) * 1024


class RssSampler:
    """``async with RssSampler(pid) as s: ...`` then ``s.peak`` (bytes, summed over the tree)."""

    def __init__(self, root: int, interval: float = 0.05, pss: bool = False) -> None:
        self.root = root
        self.interval = interval
        # smaps_rollup walks the page tables under the process's mmap lock: sampling it
        # slows the server being measured, so only the memory workload asks for it.
        self.pss = pss
        self.peak = 0
        self.baseline = 0
        self.hwm_sum = 0
        self.samples = 0
        self.peak_pss = 0  # proportional set size: forked workers' shared pages counted once
        self._pids: list[int] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> RssSampler:
        self._pids = descendants(self.root)
        for pid in self._pids:
            with contextlib.suppress(OSError):
                # Resets VmHWM to VmRSS; a few bytes to /proc, fine on the loop.
                Path(f"/proc/{pid}/clear_refs").write_text("5")  # noqa: ASYNC240
        self.baseline = self._sum("VmRSS")
        self.peak = self.baseline
        self._task = asyncio.create_task(self._run())
        return self

    def _sum(self, field: str) -> int:
        return sum(_status_kib(pid, field) for pid in self._pids) * 1024

    async def _run(self) -> None:
        while True:
            # Reading a few small /proc files: cheap enough to do on the event loop.
            self.peak = max(self.peak, self._sum("VmRSS"))
            if self.pss:
                self.peak_pss = max(self.peak_pss, sum(_pss_kib(p) for p in self._pids) * 1024)
            self.samples += 1
            await asyncio.sleep(self.interval)

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self.peak = max(self.peak, self._sum("VmRSS"))
        self.hwm_sum = self._sum("VmHWM")
