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

import atexit
import contextlib
import json
import os
import signal
import socket
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


class _JailServer:
    """One ``python -I -S sandbox_init.py --serve FD`` process (:func:`sandbox_init.serve`):
    it forks each RUN's jail, so a RUN pays a ``fork`` instead of starting an interpreter
    (~40 ms of CPU).  It is not a thread of the builder (a multi-threaded process cannot
    enter a user namespace): a process of its own, which exits when its socket closes --
    when the builder exits or dies, killing a RUN still going."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-I", "-S", os.fspath(_INIT), "--serve", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, start_new_session=True)
        except OSError:
            ours.close()
            raise
        finally:
            theirs.close()
        self.sock = ours

    def start(self, config: Path, output: int) -> None:
        """Send the request (may fail only if the server has gone: nothing started then)."""
        socket.send_fds(self.sock, [os.fsencode(config)], [output])

    def answer(self, word: str) -> int:
        """``pid`` (the RUN's process, a session leader) or ``exit`` (its wait status)."""
        kind, _, value = self.sock.recv(64).decode().partition(" ")
        if kind != word or not value.isdigit():
            raise OSError(f"the jail server ended (exit {self.proc.poll()})")
        return int(value)

    def close(self) -> None:
        self.sock.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)


class _Servers:
    """The idle jail servers of this process: one per RUN running at the same time."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.idle: list[_JailServer] = []
        self.pid = os.getpid()

    def take(self) -> _JailServer:
        with self.lock:
            if self.pid != os.getpid():  # a forked copy of the builder: not its servers
                self.idle, self.pid = [], os.getpid()
            while self.idle:
                server = self.idle.pop()
                if server.proc.poll() is None:
                    return server
                server.close()
        return _JailServer()

    def give_back(self, server: _JailServer) -> None:
        with self.lock:
            self.idle.append(server)

    def close(self) -> None:
        with self.lock:
            idle, self.idle = self.idle, []
        if self.pid == os.getpid():
            for server in idle:
                server.close()


_servers = _Servers()
atexit.register(_servers.close)


def _start(config: Path, output: int) -> tuple[_JailServer, int]:
    """Hand the RUN to a jail server; its pid once the jail's process exists."""
    for attempt in (1, 2):
        try:
            server = _servers.take()
        except OSError as exc:
            raise BuildError(f"cannot start the RUN jail: {exc}") from exc
        try:
            server.start(config, output)
        except OSError as exc:  # an idle server that had gone: nothing was started
            server.close()
            if attempt == 2:
                raise BuildError(f"cannot start the RUN jail: {exc}") from exc
            continue
        try:
            return server, server.answer("pid")
        except OSError as exc:
            server.close()
            raise BuildError(f"cannot start the RUN jail: {exc}") from exc
    raise AssertionError("unreachable")


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
    returncode = 125
    try:
        read, write = os.pipe()
        try:
            try:
                server, pid = _start(config, write)
            finally:
                os.close(write)

            def expire() -> None:
                timed_out.set()
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
            timer = threading.Timer(limits.timeout, expire)
            timer.daemon = True
            timer.start()
            answered = False
            try:
                while chunk := os.read(read, 65536):
                    chunks.append(chunk)
                    if output is not None:
                        output(chunk)
                try:
                    returncode = os.waitstatus_to_exitcode(server.answer("exit"))
                    answered = True
                except OSError as exc:
                    raise BuildError(f"the RUN jail failed: {exc}") from exc
            finally:
                timer.cancel()
                if answered:
                    _servers.give_back(server)
                else:  # the server kills a RUN whose builder stopped listening
                    server.close()
        finally:
            os.close(read)
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
        raise BuildError(f"the RUN jail failed (exit {returncode}): "
                         f"{text.decode(errors='replace').strip()}") from None
    if report.get("error"):
        raise BuildError(f"RUN jail setup failed: {report['error']}",
                         output=text.decode(errors="replace"))
    upper = step_dir / "rw" / "upper"
    for name in report.get("created", ()):
        with contextlib.suppress(OSError):  # mount points made for the jail: not changes
            (upper / name).rmdir()
    code = report.get("exit_code")
    return SandboxResult(code if isinstance(code, int) else returncode, text, upper)
