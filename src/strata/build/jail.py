"""What a RUN jail may use: its id range, its limits, and the cgroups that enforce them.

The id range.  Root inside the jail is uid/gid :data:`SUBID_BASE` on the host and the jail
sees :data:`SUBID_COUNT` ids (``0..65535`` inside = ``100000..165535`` outside), the range
Debian's ``useradd`` hands out first in ``/etc/subuid``.  strata runs RUN steps as root
(it mounts the overlay) and writes ``uid_map``/``gid_map`` itself, so no ``/etc/subuid``
entry is needed; an operator who gives that range to someone else moves strata's with
``STRATA_JAIL_SUBID=BASE:COUNT`` (COUNT ≥ 65536), and makes sure no host account owns it.
Builds do not chown anything into the range: the overlay's layers are idmapped mounts, so
files stay uid 0 (as the image expects) on disk.

The limits (:class:`JailLimits`, from ``STRATA_BUILD_RUN_TIMEOUT`` seconds,
``STRATA_BUILD_RUN_MEMORY`` bytes (``k``/``m``/``g`` suffixes) and ``STRATA_BUILD_RUN_PIDS``):
the time is enforced by :mod:`strata.build.sandbox` (the jail is killed), memory and
processes by a cgroup of the jail (v2 ``memory.max``/``pids.max`` when the unified
hierarchy has the controllers; else the v1 ``memory`` and ``pids`` hierarchies, below the
builder's own cgroup), and processes also by ``RLIMIT_NPROC`` of the command (its uid on
the host is the jail's alone), which holds even where no cgroup can be made.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from strata.build.errors import BuildError

__all__ = ["SUBID_BASE", "SUBID_COUNT", "Cgroup", "JailLimits", "jail_available", "subid_range"]

SUBID_BASE = 100000
SUBID_COUNT = 65536
CGROUP_ROOT = Path("/sys/fs/cgroup")
_counter = itertools.count()


@dataclass(frozen=True)
class JailLimits:
    timeout: float = 3600.0  # seconds of one RUN
    memory: int = 4 << 30  # bytes
    pids: int = 4096  # processes and threads
    ram_scratch: int = 2 << 30  # bytes of a build's RUN directories kept in RAM (0: none)
    ram_scratch_dir: str = "/dev/shm"  # the tmpfs they go to

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> JailLimits:
        def number(name: str, default: float, *, zero: bool = False) -> float:
            text = env.get(name, "").strip().lower()
            if not text:
                return default
            scale = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}.get(text[-1], 1)
            try:
                value = float(text[:-1] if scale != 1 else text) * scale
            except ValueError:
                raise BuildError(f"{name}={text!r}: not a number") from None
            if value < 0 or (value == 0 and not zero) or value == float("inf"):
                raise BuildError(f"{name}={text!r}: must be "
                                 + ("≥ 0" if zero else "positive"))
            return value
        scratch_dir = env.get("STRATA_BUILD_RAM_SCRATCH_DIR", "").strip() or cls.ram_scratch_dir
        if not os.path.isabs(scratch_dir):
            raise BuildError(f"STRATA_BUILD_RAM_SCRATCH_DIR={scratch_dir!r}: "
                             "must be an absolute path")
        return cls(number("STRATA_BUILD_RUN_TIMEOUT", cls.timeout),
                   int(number("STRATA_BUILD_RUN_MEMORY", cls.memory)),
                   int(number("STRATA_BUILD_RUN_PIDS", cls.pids)),
                   int(number("STRATA_BUILD_RAM_SCRATCH", cls.ram_scratch, zero=True)),
                   scratch_dir)


def subid_range(env: Mapping[str, str]) -> tuple[int, int]:
    text = env.get("STRATA_JAIL_SUBID", "")
    if not text:
        return SUBID_BASE, SUBID_COUNT
    base, _, count = text.partition(":")
    if not (base.isdigit() and count.isdigit()) or int(base) < 1 or int(count) < 65536:
        raise BuildError(f"STRATA_JAIL_SUBID={text!r}: expected BASE:COUNT, COUNT ≥ 65536")
    return int(base), int(count)


def jail_available() -> None:
    """Raise a :class:`BuildError` saying why RUN steps cannot be jailed here."""
    if os.geteuid() != 0:
        raise BuildError(
            "RUN steps run in a jail (user namespace, idmapped overlay, pivot_root) that "
            "strata sets up as root: run `strata build` as root (e.g. with sudo), or "
            "build on a strata server; rootless RUN is not supported")
    if not Path("/proc/self/ns/user").exists():
        raise BuildError("RUN steps need user namespaces, which this kernel does not have")


def _own_path(controller: str) -> str:
    """The builder's cgroup path in a v1 *controller* hierarchy (or v2 with ``""``)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, names, path = line.split(":", 2)
            if controller in names.split(",") or (not controller and not names):
                return path.lstrip("/")
    return ""


def _sweep(parent: Path) -> None:
    """Remove the empty cgroups of builders that died without removing them (killed)."""
    with contextlib.suppress(OSError):
        for entry in parent.iterdir():
            _, _, rest = entry.name.partition("strata-run-")
            pid = rest.split("-", 1)[0]
            if not entry.name.startswith("strata-run-") or not pid.isdigit():
                continue
            try:
                os.kill(int(pid), 0)
                continue  # its builder is alive
            except ProcessLookupError:
                pass
            except PermissionError:
                continue
            with contextlib.suppress(OSError):
                entry.rmdir()  # fails while something is still in it


class Cgroup:
    """The cgroup(s) of one jail: created before it starts, killed and removed after."""

    def __init__(self, limits: JailLimits) -> None:
        self.dirs: list[Path] = []
        self.kind = "none"
        name = f"strata-run-{os.getpid()}-{next(_counter)}"
        unified = CGROUP_ROOT / "cgroup.controllers"
        with contextlib.suppress(OSError):
            if {"memory", "pids"} <= set(unified.read_text().split()):
                parent = CGROUP_ROOT / _own_path("")
                self._make(parent / name, {"memory.max": limits.memory,
                                           "memory.swap.max": 0, "pids.max": limits.pids})
                self.kind = "v2"
                return
        for controller, values in (("pids", {"pids.max": limits.pids}),
                                   ("memory", {"memory.limit_in_bytes": limits.memory})):
            base = CGROUP_ROOT / controller
            if not (base / "cgroup.procs").exists():
                continue
            with contextlib.suppress(OSError):
                self._make(base / _own_path(controller) / name, values)
                self.kind = "v1"

    def _make(self, path: Path, values: Mapping[str, int]) -> None:
        _sweep(path.parent)
        path.mkdir()
        self.dirs.append(path)
        for key, value in values.items():
            with contextlib.suppress(FileNotFoundError):  # e.g. no swap accounting
                (path / key).write_text(str(value))

    @property
    def procs(self) -> list[str]:
        return [os.fspath(path / "cgroup.procs") for path in self.dirs]

    def close(self) -> None:
        """Kill whatever is left in the cgroups and remove them."""
        for path in self.dirs:
            for _ in range(50):
                with contextlib.suppress(OSError):
                    pids = (path / "cgroup.procs").read_text().split()
                    for pid in pids:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(int(pid), signal.SIGKILL)
                with contextlib.suppress(OSError):
                    path.rmdir()
                    break
                time.sleep(0.02)
        self.dirs = []
