"""Run one ``RUN`` command in a jail on an overlay of the layers.

The jail (:mod:`strata.build.sandbox_init`, which says how it is built) gives the command
a user namespace whose root is an unprivileged uid on the host (:mod:`strata.build.jail`),
fresh mount, PID, UTS, IPC namespaces and a network namespace with only a loopback
interface unless ``--network host`` was asked for, ``pivot_root`` into the overlay with
the old root detached, ``/proc`` and a minimal ``/dev``, a cut-down capability set,
``no_new_privs``, a seccomp filter, and limits on time, memory and processes.
The overlay -- ``lowerdir`` = the image's layers (topmost first), ``upperdir`` = a fresh
directory that receives every change -- is mounted with
``redirect_dir=off,metacopy=off,index=off`` so the upper directory is self-contained:
afterwards it *is* the step's layer in overlay format (:func:`strata.image.diff_tree`
turns it into a tar with OCI whiteouts, and later steps use it as a lower directory).

Nothing stays mounted on the host: the mounts belong to the jail's mount namespaces,
which disappear with their last process (the jail is killed if the builder dies).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from strata.build.errors import BuildError
from strata.build.jail import Cgroup, JailLimits, jail_available, subid_range

__all__ = ["RunSpec", "SandboxResult", "run_in_sandbox"]

_INIT = Path(__file__).with_name("sandbox_init.py")
HOSTNAME = "strata-build"


@dataclass(frozen=True)
class RunSpec:
    argv: tuple[str, ...]
    env: tuple[str, ...]
    workdir: str = "/"
    user: str = ""
    network: Literal["none", "host"] = "none"
    limits: JailLimits = field(default_factory=JailLimits)


@dataclass(frozen=True)
class SandboxResult:
    exit_code: int
    output: bytes
    upper: Path


def _jail_command(config: Path) -> list[str]:
    return [sys.executable, "-I", "-S", os.fspath(_INIT), os.fspath(config)]


def run_in_sandbox(
    lowers: Sequence[Path],
    step_dir: Path,
    spec: RunSpec,
    output: Callable[[bytes], None] | None = None,
) -> SandboxResult:
    """Run *spec* on an overlay of *lowers* (topmost first); changes land in
    ``step_dir/upper``, which is returned with the exit code and the combined output."""
    jail_available()
    links = step_dir / "l"
    for sub in ("l", "rw/upper", "rw/work", "merged"):
        (step_dir / sub).mkdir(parents=True)
    for sub in ("", "l", "rw", "rw/upper", "rw/work", "merged"):
        # whatever the builder's umask (strata serve's is 077): the jail's root walks these
        # as an unprivileged uid, and rw/upper's mode is the mode of the jail's "/"
        (step_dir / sub).chmod(0o755)
    names = []
    for index, lower in enumerate(lowers):
        (links / str(index)).symlink_to(lower)
        names.append(str(index))
    if not names:  # overlayfs needs at least one lower directory
        (links / "empty").mkdir()
        names.append("empty")
    status = step_dir / "status.json"
    config = step_dir / "sandbox.json"
    base, count = subid_range(os.environ)
    limits = spec.limits
    cgroup = Cgroup(limits)
    config.write_text(json.dumps({
        "step_dir": os.fspath(step_dir), "lowers": names, "argv": list(spec.argv),
        "env": list(spec.env), "workdir": spec.workdir, "user": spec.user,
        "network": spec.network, "hostname": HOSTNAME, "status": os.fspath(status),
        "subid_base": base, "subid_count": count, "nproc": limits.pids,
        "cgroups": cgroup.procs}))
    chunks: list[bytes] = []
    timed_out = threading.Event()
    try:
        try:
            proc = subprocess.Popen(_jail_command(config), stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        except OSError as exc:
            raise BuildError(f"cannot start the RUN jail: {exc}") from exc

        def expire() -> None:
            timed_out.set()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        timer = threading.Timer(limits.timeout, expire)
        timer.daemon = True
        timer.start()
        assert proc.stdout is not None
        try:
            with proc:
                fd = proc.stdout.fileno()
                while chunk := os.read(fd, 65536):
                    chunks.append(chunk)
                    if output is not None:
                        output(chunk)
        finally:
            timer.cancel()
    finally:
        cgroup.close()
    text = b"".join(chunks)
    if timed_out.is_set():
        raise BuildError(f"RUN timed out after {limits.timeout:g}s (the jail was killed; "
                         "STRATA_BUILD_RUN_TIMEOUT sets the limit)",
                         output=text.decode(errors="replace"))
    try:
        report = json.loads(status.read_text())
    except (OSError, ValueError):
        raise BuildError(f"the RUN jail failed (exit {proc.returncode}): "
                         f"{text.decode(errors='replace').strip()}") from None
    if report.get("error"):
        raise BuildError(f"RUN jail setup failed: {report['error']}",
                         output=text.decode(errors="replace"))
    upper = step_dir / "rw" / "upper"
    for name in report.get("created", ()):
        with contextlib.suppress(OSError):  # mount points made for the jail: not changes
            (upper / name).rmdir()
    code = report.get("exit_code")
    return SandboxResult(code if isinstance(code, int) else proc.returncode, text, upper)
