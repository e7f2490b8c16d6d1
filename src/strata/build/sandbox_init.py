"""PID 1 of a RUN sandbox: mount the overlay, /proc and /dev, chroot, run, reap.

Started by :mod:`strata.build.sandbox` as
``unshare --mount --uts --ipc --pid --fork [--net] -- python -I -S sandbox_init.py CONFIG``,
so it runs as root in fresh mount/UTS/IPC/PID (and network) namespaces.  It imports only
the standard library (``-I -S``: no site, no user paths).  Mounts die with the mount
namespace when the last process in it exits, so nothing is ever left mounted on the host.

CONFIG (JSON): ``step_dir`` (holds ``l/0..n`` symlinks to the lower layers, topmost first,
``upper``, ``work``, ``merged``), ``lowers``, ``argv``, ``env``, ``workdir``, ``user``,
``network`` (``none``/``host``), ``hostname``, ``status`` (a file that receives
``{"created": [...], "error": ...}``).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import os
import signal
import socket
import struct
import sys
from typing import Any

MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
DEV_LINKS = {"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1",
             "stderr": "/proc/self/fd/2", "ptmx": "pts/ptmx"}

_libc = ctypes.CDLL(None, use_errno=True)


class SetupError(Exception):
    pass


def mount(source: str, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    rc = _libc.mount(source.encode(), target.encode(),
                     fstype.encode() if fstype else None, ctypes.c_ulong(flags),
                     data.encode() if data else None)
    if rc != 0:
        err = ctypes.get_errno()
        raise SetupError(f"mount {fstype or 'bind'} on {target}: {os.strerror(err)}")


def ensure_dir(path: str, created: list[str], name: str) -> None:
    if os.path.islink(path) or (os.path.exists(path) and not os.path.isdir(path)):
        raise SetupError(f"/{name} in the image is not a directory")
    if not os.path.isdir(path):
        os.mkdir(path, 0o755)
        created.append(name)


def setup_dev(dev: str) -> None:
    mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=755,size=65536k")
    for name in DEVICES:
        target = os.path.join(dev, name)
        open(target, "wb").close()
        if os.path.exists(f"/dev/{name}"):
            mount(f"/dev/{name}", target, None, MS_BIND, None)
    for name, link in DEV_LINKS.items():
        os.symlink(link, os.path.join(dev, name))
    for sub, fstype, data in (("shm", "tmpfs", "mode=1777,size=65536k"),
                              ("pts", "devpts", "newinstance,ptmxmode=0666,mode=620")):
        os.mkdir(os.path.join(dev, sub), 0o755)
        with contextlib.suppress(SetupError):  # optional: a build needing a pty fails itself
            mount(sub, os.path.join(dev, sub), fstype, MS_NOSUID | MS_NOEXEC, data)


def loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14s", b"lo", 0, b"")
        flags = struct.unpack("16sH14s", fcntl.ioctl(sock, 0x8913, request))[1]  # SIOCGIFFLAGS
        fcntl.ioctl(sock, 0x8914, struct.pack("16sH14s", b"lo", flags | 1, b""))  # SIOCSIFFLAGS


def read_db(path: str) -> list[list[str]]:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return [line.rstrip("\n").split(":") for line in fh if line.strip()
                    and not line.startswith("#")]
    except OSError:
        return []


def resolve_user(spec: str) -> tuple[int, int, list[int], str]:
    """``user[:group]`` inside the chroot -> uid, gid, supplementary gids (as
    ``initgroups(3)`` makes them: the user's groups plus the primary one), home."""
    user, _, group = spec.partition(":")
    passwd = [row for row in read_db("/etc/passwd") if len(row) >= 7]
    groups = [row for row in read_db("/etc/group") if len(row) >= 4]
    entry = next((row for row in passwd if row[0] == user or
                  (user.isdigit() and row[2] == user)), None)
    if entry is None and not user.isdigit():
        raise SetupError(f"unknown user {user!r} (not in /etc/passwd of the image)")
    uid = int(user) if user.isdigit() else int(entry[2]) if entry else 0
    gid = int(entry[3]) if entry else 0
    name = entry[0] if entry else user
    extra: list[int] = []
    if group:
        match = next((row for row in groups if row[0] == group), None)
        if group.isdigit():
            gid = int(group)
        elif match is None:
            raise SetupError(f"unknown group {group!r} (not in /etc/group of the image)")
        else:
            gid = int(match[2])
    else:
        extra = sorted({int(row[2]) for row in groups if name in row[3].split(",")} | {gid})
    home = entry[5] if entry and entry[5] else "/"
    return uid, gid, extra, home


def exit_code(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def run(cfg: dict[str, Any], report: dict[str, Any]) -> int:
    os.umask(0o022)
    mount("none", "/", None, MS_REC | MS_PRIVATE, None)
    os.chdir(cfg["step_dir"])
    lowers = ":".join(f"l/{name}" for name in cfg["lowers"])
    mount("overlay", "merged", "overlay", 0,
          f"lowerdir={lowers},upperdir=upper,workdir=work,"
          "redirect_dir=off,metacopy=off,index=off")
    merged = os.path.join(cfg["step_dir"], "merged")
    created: list[str] = report["created"]
    ensure_dir(os.path.join(merged, "proc"), created, "proc")
    mount("proc", os.path.join(merged, "proc"), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
    ensure_dir(os.path.join(merged, "dev"), created, "dev")
    setup_dev(os.path.join(merged, "dev"))
    if cfg["network"] == "host":
        for name in ("resolv.conf", "hosts"):
            target = os.path.join(merged, "etc", name)
            if os.path.isfile(f"/etc/{name}") and os.path.isfile(target) \
                    and not os.path.islink(target):
                mount(f"/etc/{name}", target, None, MS_BIND, None)
    else:
        loopback_up()
    socket.sethostname(cfg["hostname"])
    os.chroot(merged)
    os.chdir("/")
    uid, gid, extra, home = resolve_user(cfg["user"] or "0")
    workdir = cfg["workdir"] or "/"
    os.makedirs(workdir, exist_ok=True)
    env = dict(item.split("=", 1) for item in cfg["env"])
    env.setdefault("HOME", home)
    argv = cfg["argv"]
    sys.stdout.flush()
    child = os.fork()
    if child == 0:
        try:
            os.setgroups(extra)
            os.setgid(gid)
            os.setuid(uid)
            os.chdir(workdir)
            for sig in (signal.SIGPIPE, signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, signal.SIG_DFL)
            os.execvpe(argv[0], argv, env)
        except OSError as exc:
            os.write(2, f"strata: cannot run {argv[0]}: {exc.strerror}\n".encode())
            os._exit(127 if isinstance(exc, FileNotFoundError) else 126)
    while True:
        pid, status = os.wait()
        if pid == child:
            return exit_code(status)


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as fh:
        cfg = json.load(fh)
    report: dict[str, Any] = {"created": [], "error": None, "exit_code": None}
    status_fd = os.open(cfg["status"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    code = 125
    try:
        code = run(cfg, report)
        report["exit_code"] = code
    except (SetupError, OSError) as exc:
        report["error"] = str(exc)
    os.write(status_fd, json.dumps(report).encode())
    os.close(status_fd)
    os._exit(code)


if __name__ == "__main__":
    main()
