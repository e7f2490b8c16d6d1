"""Where one build's RUN steps write: RAM while its budget lasts, else the work directory.

A RUN's changes land in an overlay upper directory that becomes the step's layer (and a
lower directory of the next RUN); the layers a later RUN needs are unpacked into directories
too.  Creating files is the cost of such steps, and on a disk it is the kernel's: on the
ext4 of the machines strata is measured on, creating an inode in a directory whose block group
saw recent deletions -- ``/tmp``, or any build area after a few builds -- costs ~0.65 ms of
system time (1,000 ``echo > file`` in a shell: 0.80 s in ``/tmp``, 0.015 s on a tmpfs; 0.02 s
in a fresh directory elsewhere), so a RUN that writes thousands of small files spent most of
its time there.  Like mock's tmpfs plugin,
strata puts those directories on a tmpfs (``/dev/shm`` by default) up to a per-build budget
(:class:`~strata.build.jail.JailLimits` ``ram_scratch``, ``STRATA_BUILD_RAM_SCRATCH``, default
2 GiB; never more than half of the tmpfs's free space), and on the disk once it is spent.

Pages a RUN writes to the tmpfs are charged to its jail's memory cgroup, so one RUN cannot put
more than its memory limit there.  A RUN in RAM that fails after filling it -- the tmpfs
nearly full, or an upper directory of at least :data:`SPILL_BYTES` (an out-of-memory kill in
its cgroup) -- is run again from scratch on the disk, with every later step
(:meth:`Scratch.ran_out`).  The layers' tars and blobs are written to the work directory on
disk as before: only the directories live in RAM, and only while the build runs
(:meth:`Scratch.close`).  A builder killed before it could remove its RAM directory leaves
``strata-build-<pid>-*`` behind; the next build removes those whose process is gone.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from strata.build.jail import JailLimits

__all__ = ["SPILL_BYTES", "Scratch"]

SPILL_BYTES = 256 << 20  # a failed RUN that left this much in RAM is run again on disk
MIN_BUDGET = 64 << 20  # below this, RAM scratch is not worth it: everything on disk
LOW_FREE = 64 << 20  # a tmpfs with less free than this counts as full
PREFIX = "strata-build-"


def tree_bytes(root: Path) -> int:
    """Bytes the files below *root* occupy (allocated blocks; directories included)."""
    total = 0
    for top, dirs, files in os.walk(root):
        for name in (*dirs, *files):
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(top, name)).st_blocks * 512
    return total


def _free(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def _sweep(parent: Path) -> None:
    """Remove RAM directories of builders that are gone (killed before they cleaned up)."""
    with contextlib.suppress(OSError):
        for entry in os.scandir(parent):
            if not entry.name.startswith(PREFIX):
                continue
            pid_text = entry.name[len(PREFIX):].split("-", 1)[0]
            if not pid_text.isdigit() or int(pid_text) == os.getpid():
                continue
            try:
                os.kill(int(pid_text), 0)
            except ProcessLookupError:
                shutil.rmtree(entry.path, ignore_errors=True)
            except OSError:
                pass  # alive (another user's): not ours to remove


class Scratch:
    """The directories of one build: :meth:`place` names where the next one goes."""

    def __init__(self, disk: Path, limits: JailLimits) -> None:
        self.disk = disk
        self.ram: Path | None = None
        self.budget = 0
        self.used = 0
        if limits.ram_scratch <= 0:
            return
        parent = Path(limits.ram_scratch_dir)
        try:
            _sweep(parent)
            budget = min(limits.ram_scratch, _free(parent) // 2)
            if budget < MIN_BUDGET:
                return
            ram = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=parent))
        except OSError:  # no such tmpfs, or not writable: the disk it is
            return
        try:  # the jail's overlay keeps whiteouts in user.* xattrs of the upper directory
            os.setxattr(ram, "user.strata.probe", b"1")
            os.removexattr(ram, "user.strata.probe")
        except OSError:  # a tmpfs before Linux 6.6 has no user xattrs
            shutil.rmtree(ram, ignore_errors=True)
            return
        self.ram, self.budget = ram, budget

    def describe(self) -> str:
        """Where the directories go, for the build log."""
        if self.ram is None:
            return f"RUN directories on disk ({self.disk})"
        return (f"RUN directories in RAM ({self.ram.parent}, up to {self.budget >> 20} MiB), "
                f"then on disk")

    def place(self, name: str) -> Path:
        """The path of the build's next directory *name* (not created): in RAM while the
        budget lasts and the tmpfs has room, else in the work directory."""
        if self.ram is not None and self.used < self.budget:
            with contextlib.suppress(OSError):
                if _free(self.ram) >= LOW_FREE:
                    return self.ram / name
        return self.disk / name

    def in_ram(self, path: Path) -> bool:
        return self.ram is not None and path.is_relative_to(self.ram)

    def charge(self, path: Path) -> None:
        """Count what *path* (a directory :meth:`place` gave) holds against the budget."""
        if self.in_ram(path):
            self.used += tree_bytes(path)

    def ran_out(self, path: Path, *, tmpfs_full_only: bool = False) -> bool:
        """Whether a failed RUN in *path* may have failed for want of RAM -- the tmpfs is
        nearly full, or (unless *tmpfs_full_only*) the RUN left :data:`SPILL_BYTES` there:
        then *path* is removed and no later directory goes to RAM (the caller runs the step
        again)."""
        if self.ram is None or not path.is_relative_to(self.ram):
            return False
        try:
            full = _free(self.ram) < LOW_FREE or (
                not tmpfs_full_only and tree_bytes(path) >= SPILL_BYTES)
        except OSError:
            full = True
        if full:
            shutil.rmtree(path, ignore_errors=True)
            self.used = self.budget
        return full

    def close(self) -> None:
        if self.ram is not None:
            shutil.rmtree(self.ram, ignore_errors=True)
            self.ram = None
