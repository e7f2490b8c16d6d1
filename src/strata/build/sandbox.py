"""Run one ``RUN`` command isolated with Linux namespaces on an overlay of the layers.

Isolation: ``unshare`` (util-linux) gives the command fresh mount, UTS, IPC and PID
namespaces, and a network namespace with only a loopback interface unless
``--network host`` was asked for.  Inside, :mod:`strata.build.sandbox_init` (PID 1)
mounts an overlay -- ``lowerdir`` = the image's layers (topmost first), ``upperdir`` = a
fresh directory that receives every change -- plus ``/proc`` and a minimal ``/dev``
(``null``, ``zero``, ``full``, ``random``, ``urandom``, ``tty`` bound from the host),
``chroot``\\ s into it and runs the command as the image's ``USER`` (root by default).
The overlay is mounted with ``redirect_dir=off,metacopy=off,index=off`` so the upper
directory is self-contained: afterwards it *is* the step's layer in overlay format
(:func:`strata.image.diff_tree` turns it into a tar with OCI whiteouts, and later steps
use it as a lower directory as it is).

Nothing stays mounted on the host: the mounts belong to the sandbox's mount namespace,
which disappears with its last process (``--kill-child`` ends it if the builder dies).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from strata.build.errors import BuildError

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


@dataclass(frozen=True)
class SandboxResult:
    exit_code: int
    output: bytes
    upper: Path


def _unshare_command(network: str, config: Path) -> list[str]:
    cmd = ["unshare", "--mount", "--uts", "--ipc", "--pid", "--fork", "--kill-child",
           "--propagation", "private"]
    if network != "host":
        cmd.append("--net")
    return [*cmd, "--", sys.executable, "-I", "-S", os.fspath(_INIT), os.fspath(config)]


def run_in_sandbox(
    lowers: Sequence[Path],
    step_dir: Path,
    spec: RunSpec,
    output: Callable[[bytes], None] | None = None,
) -> SandboxResult:
    """Run *spec* on an overlay of *lowers* (topmost first); changes land in
    ``step_dir/upper``, which is returned with the exit code and the combined output."""
    links = step_dir / "l"
    for sub in ("l", "upper", "work", "merged"):
        (step_dir / sub).mkdir(parents=True)
    names = []
    for index, lower in enumerate(lowers):
        (links / str(index)).symlink_to(lower)
        names.append(str(index))
    if not names:  # overlayfs needs at least one lower directory
        (links / "empty").mkdir()
        names.append("empty")
    status = step_dir / "status.json"
    config = step_dir / "sandbox.json"
    config.write_text(json.dumps({
        "step_dir": os.fspath(step_dir), "lowers": names, "argv": list(spec.argv),
        "env": list(spec.env), "workdir": spec.workdir, "user": spec.user,
        "network": spec.network, "hostname": HOSTNAME, "status": os.fspath(status)}))
    chunks: list[bytes] = []
    try:
        proc = subprocess.Popen(_unshare_command(spec.network, config), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    except OSError as exc:
        raise BuildError(f"cannot start the RUN sandbox (unshare): {exc}") from exc
    assert proc.stdout is not None
    with proc:
        fd = proc.stdout.fileno()
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
            if output is not None:
                output(chunk)
    text = b"".join(chunks)
    try:
        report = json.loads(status.read_text())
    except (OSError, ValueError):
        raise BuildError(f"the RUN sandbox failed (exit {proc.returncode}): "
                         f"{text.decode(errors='replace').strip()}") from None
    if report.get("error"):
        raise BuildError(f"RUN sandbox setup failed: {report['error']}",
                         output=text.decode(errors="replace"))
    upper = step_dir / "upper"
    for name in report.get("created", ()):
        with contextlib.suppress(OSError):  # mount points made for the sandbox: not changes
            (upper / name).rmdir()
    code = report.get("exit_code")
    return SandboxResult(code if isinstance(code, int) else proc.returncode, text, upper)
