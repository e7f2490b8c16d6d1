"""The RUN jail, executed as ``python -I -S sandbox_init.py CONFIG`` (one RUN), or served to a
builder by ``python -I -S sandbox_init.py --serve FD`` (:func:`serve`: one interpreter per
builder process forks each RUN's ``outer``), by :mod:`strata.build.sandbox`.

It imports only the standard library (``-I -S``: no site, no user paths) and talks to the
kernel through ``ctypes`` (libc, and libseccomp when it is installed).  Three processes:

``outer`` (host root, in a private mount namespace of its own)
    forks ``helper`` and waits until it has entered a new user namespace; writes its
    ``uid_map``/``gid_map`` (root inside = ``subid_base`` on the host, ``subid_count`` ids:
    strata writes the maps itself because it is root, so ``/etc/subuid`` is not needed);
    makes *idmapped* bind mounts of every lower directory and of the directory holding
    ``upper``/``work`` (``open_tree`` + ``mount_setattr(MOUNT_ATTR_IDMAP)``: the jail's root
    sees the layers' uid 0 files as its own, while they stay uid 0 on disk, so the layer
    written from ``upper`` has the ownership the image expects and no chown is needed);
    mounts the overlay on them; lets ``helper`` go, reaps it and writes the status file.
``helper`` (root of the new user namespace = an unprivileged uid on the host)
    unshares mount, PID, UTS, IPC, cgroup (and network, unless ``network`` is ``host``) namespaces,
    all owned by its user namespace, and forks ``init``.
``init`` (PID 1 of the jail)
    mounts ``/proc`` and a minimal ``/dev`` in the overlay, ``pivot_root``\\ s into it and
    detaches the old root (no path leads back to the host's files), makes itself
    undumpable (no ptrace, no ``/proc/1/mem``), and forks the command: its user and
    groups, a capability bounding set cut down to what package installs need (no
    ``CAP_SYS_ADMIN``, ``CAP_SYS_PTRACE``, ...; and these are capabilities of the user
    namespace only -- on the host the jail has none), ``no_new_privs``, rlimits, and a
    seccomp filter (libseccomp) refusing mount/namespace/ptrace/kexec/module/bpf/... calls.

CONFIG (JSON): ``step_dir`` (holds ``l/0..n`` symlinks to the lower layers, topmost first,
and ``rw/upper``, ``rw/work``, ``merged``), ``lowers``, ``argv``, ``env``, ``workdir``,
``user``, ``network`` (``none``/``host``), ``hostname``, ``status`` (a file that receives
``{"created": [...], "error": ..., "exit_code": ...}``), ``subid_base``, ``subid_count``,
``nproc`` (RLIMIT_NPROC of the command), ``cgroups`` (``cgroup.procs`` files to join).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import json
import os
import platform
import resource
import select
import signal
import socket
import struct
import sys
from typing import Any, NoReturn

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MNT_DETACH = 2
CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWCGROUP = 0x02000000
NAMESPACE_FLAGS = (CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID,
                   CLONE_NEWNET, CLONE_NEWCGROUP)
OPEN_TREE_CLONE = 1
AT_EMPTY_PATH = 0x1000
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOUNT_ATTR_IDMAP = 0x00100000
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
# new mount API and pivot_root: numbers of x86_64 and aarch64 (open_tree & co. are shared)
SYSCALLS = {"x86_64": {"pivot_root": 155}, "aarch64": {"pivot_root": 41}}
SYS_OPEN_TREE, SYS_MOVE_MOUNT, SYS_MOUNT_SETATTR = 428, 429, 442
# capabilities root keeps inside the user namespace (Docker's default set)
KEEP_CAPS = {0: "chown", 1: "dac_override", 3: "fowner", 4: "fsetid", 5: "kill",
             6: "setgid", 7: "setuid", 8: "setpcap", 10: "net_bind_service", 13: "net_raw",
             18: "sys_chroot", 27: "mknod", 29: "audit_write", 31: "setfcap"}
# system calls the command may not make (EPERM), whatever its capabilities
DENIED = ("mount", "umount", "umount2", "pivot_root", "move_mount", "open_tree", "fsopen",
          "fsconfig", "fsmount", "fspick", "mount_setattr", "unshare", "setns", "ptrace",
          "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd", "kexec_load",
          "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot",
          "swapon", "swapoff", "bpf", "perf_event_open", "userfaultfd", "keyctl", "add_key",
          "request_key", "open_by_handle_at", "name_to_handle_at", "acct", "quotactl",
          "quotactl_fd", "syslog", "settimeofday", "clock_settime", "clock_adjtime",
          "adjtimex", "iopl", "ioperm", "lookup_dcookie", "uselib", "vhangup", "nfsservctl",
          "fanotify_init", "io_uring_setup", "io_uring_enter", "io_uring_register")
SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_CMP_MASKED_EQ = 7
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
DEV_LINKS = {"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1",
             "stderr": "/proc/self/fd/2", "ptmx": "pts/ptmx"}

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class SetupError(Exception):
    pass


def fail(what: str) -> SetupError:
    return SetupError(f"{what}: {os.strerror(ctypes.get_errno())}")


def mount(source: str, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    rc = _libc.mount(source.encode(), target.encode(),
                     fstype.encode() if fstype else None, ctypes.c_ulong(flags),
                     data.encode() if data else None)
    if rc != 0:
        raise fail(f"mount {fstype or 'bind'} on {target}")


def unshare(flags: int, what: str) -> None:
    if _libc.unshare(ctypes.c_int(flags)) != 0:
        raise fail(f"unshare ({what})")


def prctl(option: int, arg: int, what: str) -> None:
    if _libc.prctl(ctypes.c_int(option), ctypes.c_ulong(arg), ctypes.c_ulong(0),
                   ctypes.c_ulong(0), ctypes.c_ulong(0)) != 0:
        raise fail(what)


class MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def idmapped_bind(source: str, target: str, userns_fd: int) -> None:
    """Bind *source* on *target* seen through the user namespace's id mapping."""
    fd = _libc.syscall(SYS_OPEN_TREE, -100, source.encode(),
                       ctypes.c_uint(OPEN_TREE_CLONE | os.O_CLOEXEC))
    if fd < 0:
        raise fail(f"open_tree {source}")
    try:
        attr = MountAttr(MOUNT_ATTR_IDMAP, 0, 0, userns_fd)
        if _libc.syscall(SYS_MOUNT_SETATTR, fd, b"", ctypes.c_uint(AT_EMPTY_PATH),
                         ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr))) != 0:
            raise fail(f"idmapped mount of {source} (the file system must support them)")
        if _libc.syscall(SYS_MOVE_MOUNT, fd, b"", -100, target.encode(),
                         ctypes.c_uint(MOVE_MOUNT_F_EMPTY_PATH)) != 0:
            raise fail(f"move_mount {target}")
    finally:
        os.close(fd)


def pivot_root(new_root: str, put_old: str) -> None:
    number = SYSCALLS.get(platform.machine(), {}).get("pivot_root")
    if number is None:
        raise SetupError(f"pivot_root: unsupported architecture {platform.machine()}")
    if _libc.syscall(number, new_root.encode(), put_old.encode()) != 0:
        raise fail("pivot_root")


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
    """``user[:group]`` inside the jail -> uid, gid, supplementary gids (as
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


# -- the command's restrictions --------------------------------------------------------------
class ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


def load_libseccomp() -> ctypes.CDLL:
    """libseccomp, loaded while the host's libraries are still in view."""
    try:
        return ctypes.CDLL("libseccomp.so.2", use_errno=True)
    except OSError:
        raise SetupError("libseccomp is not installed (Debian: libseccomp2); the RUN "
                         "jail needs it for its seccomp filter") from None


def seccomp_filter(lib: ctypes.CDLL) -> None:
    """Load the filter: every call allowed but :data:`DENIED` (EPERM), ``clone`` with a
    namespace flag (EPERM) and ``clone3`` (ENOSYS, so libc falls back to ``clone``, whose
    flags a filter can see).  Other architectures' calls (i386, x32) are killed."""
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                           ctypes.c_uint, ctypes.POINTER(ArgCmp)]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    ctx = lib.seccomp_init(SCMP_ACT_ALLOW)
    if not ctx:
        raise SetupError("seccomp_init failed")

    def errno_action(code: int) -> int:
        return 0x00050000 | code

    def rule(syscall: str, action: int, cmps: list[ArgCmp]) -> None:
        number = lib.seccomp_syscall_resolve_name(syscall.encode())
        if number < 0:  # not a call of this architecture
            return
        array = (ArgCmp * max(len(cmps), 1))(*cmps)
        rc = lib.seccomp_rule_add_array(ctx, action, number, len(cmps), array)
        if rc != 0:
            raise SetupError(f"seccomp rule for {syscall}: {os.strerror(-rc)}")

    try:
        for syscall in DENIED:
            rule(syscall, errno_action(errno.EPERM), [])
        for flag in NAMESPACE_FLAGS:
            rule("clone", errno_action(errno.EPERM), [ArgCmp(0, SCMP_CMP_MASKED_EQ, flag, flag)])
        rule("clone3", errno_action(errno.ENOSYS), [])
        rc = lib.seccomp_load(ctx)
        if rc != 0:
            raise SetupError(f"seccomp_load: {os.strerror(-rc)}")
    finally:
        lib.seccomp_release(ctx)


def drop_capabilities() -> None:
    with open("/proc/sys/kernel/cap_last_cap") as fh:
        last = int(fh.read())
    for cap in range(last + 1):
        if cap not in KEEP_CAPS:
            prctl(PR_CAPBSET_DROP, cap, f"dropping capability {cap}")


def exec_command(cfg: dict[str, Any], uid: int, gid: int, extra: list[int], workdir: str,
                 env: dict[str, str], libseccomp: ctypes.CDLL) -> None:
    argv = cfg["argv"]
    try:
        drop_capabilities()
        os.setgroups(extra)
        os.setgid(gid)
        os.setuid(uid)
        os.chdir(workdir)
        nproc = int(cfg.get("nproc") or 0)
        if nproc:
            resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
        prctl(PR_SET_NO_NEW_PRIVS, 1, "no_new_privs")
        seccomp_filter(libseccomp)
        for sig in (signal.SIGPIPE, signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)
        os.execvpe(argv[0], argv, env)
    except OSError as exc:
        os.write(2, f"strata: cannot run {argv[0]}: {exc.strerror}\n".encode())
        os._exit(127 if isinstance(exc, FileNotFoundError) else 126)
    except Exception as exc:  # never return into PID 1's code
        os.write(2, f"strata: jail setup failed: {exc}\n".encode())
        os._exit(125)


# -- the three processes ---------------------------------------------------------------------
def init(cfg: dict[str, Any], report: dict[str, Any]) -> int:
    """PID 1 of the jail: mounts, pivot_root, run the command, reap."""
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL, "pdeathsig")
    libseccomp = load_libseccomp()
    mount("none", "/", None, MS_REC | MS_PRIVATE, None)
    # relative to the step directory, our working directory since ``outer``: the jail's
    # uid may not walk the host's path to it
    merged = "merged"
    # mounted in the user namespace: overlayfs writes the upper directory with the
    # mounter's credentials, which the idmapped mounts can map only from inside
    lowers = ":".join(f"m/{index}" for index in range(len(cfg["lowers"])))
    mount("overlay", merged, "overlay", 0,
          f"lowerdir={lowers},upperdir=rwm/upper,workdir=rwm/work,userxattr,index=off")
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
    os.chdir(merged)
    pivot_root(".", ".")  # the old root ends up stacked under the new one ...
    if _libc.umount2(b".", ctypes.c_int(MNT_DETACH)) != 0:  # ... and is detached: gone
        raise fail("detaching the old root")
    os.chdir("/")
    prctl(PR_SET_DUMPABLE, 0, "dumpable")
    uid, gid, extra, home = resolve_user(cfg["user"] or "0")
    workdir = cfg["workdir"] or "/"
    os.makedirs(workdir, exist_ok=True)
    env = dict(item.split("=", 1) for item in cfg["env"])
    env.setdefault("HOME", home)
    sys.stdout.flush()
    child = os.fork()
    if child == 0:
        exec_command(cfg, uid, gid, extra, workdir, env, libseccomp)
    while True:
        pid, status = os.wait()
        if pid == child:
            return exit_code(status)


def helper(cfg: dict[str, Any], go: int, ready: int, report_fd: int) -> None:
    """In a new user namespace: wait for the maps, unshare the rest, fork PID 1."""
    code = 125
    report: dict[str, Any] = {"created": [], "error": None, "exit_code": None}
    try:
        unshare(CLONE_NEWUSER, "user namespace")
        os.write(ready, b"u")
        if os.read(go, 1) != b"g":
            os._exit(125)
        os.setresgid(0, 0, 0)
        os.setgroups([])
        os.setresuid(0, 0, 0)
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, "pdeathsig")
        # a cgroup namespace too: the jail sees its own cgroup as "/", not the host's tree
        flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWCGROUP
        if cfg["network"] != "host":
            flags |= CLONE_NEWNET
        unshare(flags, "mount/pid/uts/ipc/net namespaces")
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            try:
                code = init(cfg, report)
                report["exit_code"] = code
            except (SetupError, OSError) as exc:
                report["error"] = str(exc)
            os.write(report_fd, json.dumps(report).encode())
            os._exit(code)
        os.close(report_fd)
        _, status = os.waitpid(pid, 0)
        os._exit(exit_code(status))
    except (SetupError, OSError) as exc:
        report["error"] = str(exc)
        os.write(report_fd, json.dumps(report).encode())
        os._exit(code)


def outer(cfg: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL, "pdeathsig")
    os.umask(0o022)  # the RUN's umask (and our mount points'), whatever the builder's is
    for procs in cfg.get("cgroups") or ():
        with open(procs, "w") as fh:  # everything below joins the job's cgroups
            fh.write(str(os.getpid()))
    unshare(CLONE_NEWNS, "mount namespace")
    mount("none", "/", None, MS_REC | MS_PRIVATE, None)
    step = cfg["step_dir"]
    os.chdir(step)
    go_r, go_w = os.pipe()
    ready_r, ready_w = os.pipe()
    report_r, report_w = os.pipe()
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
        for fd in (go_w, ready_r, report_r):
            os.close(fd)
        helper(cfg, go_r, ready_w, report_w)
    for fd in (go_r, ready_w, report_w):
        os.close(fd)
    report: dict[str, Any] = {"created": [], "error": None, "exit_code": None}
    try:
        if os.read(ready_r, 1) != b"u":
            raise SetupError("the jail's user namespace could not be created")
        base, count = int(cfg["subid_base"]), int(cfg["subid_count"])
        for name in ("uid_map", "gid_map"):
            with open(f"/proc/{pid}/{name}", "w") as fh:
                fh.write(f"0 {base} {count}\n")
        userns = os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.mkdir("m")
            for index, name in enumerate(cfg["lowers"]):
                target = f"m/{index}"
                os.mkdir(target)
                idmapped_bind(os.path.realpath(f"l/{name}"), target, userns)
            os.mkdir("rwm")
            idmapped_bind(os.path.join(step, "rw"), "rwm", userns)
        finally:
            os.close(userns)
        os.write(go_w, b"g")
    except (SetupError, OSError) as exc:
        report["error"] = str(exc)
        with contextlib.suppress(OSError):
            os.write(go_w, b"x")
    os.close(go_w)
    _, status = os.waitpid(pid, 0)
    chunks = []
    while chunk := os.read(report_r, 65536):
        chunks.append(chunk)
    if report["error"] is None:
        try:
            report = json.loads(b"".join(chunks))
        except ValueError:
            report["error"] = f"the jail ended without a report (exit {exit_code(status)})"
    return exit_code(status), report


def run(config: str) -> NoReturn:
    """One RUN: the jail of the CONFIG file, its report in the status file, our exit code the
    jail's."""
    with open(config, encoding="utf-8") as fh:
        cfg = json.load(fh)
    status_fd = os.open(cfg["status"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    code = 125
    try:
        code, report = outer(cfg)
    except (SetupError, OSError) as exc:
        report = {"created": [], "error": str(exc), "exit_code": None}
    os.write(status_fd, json.dumps(report).encode())
    os.close(status_fd)
    os._exit(code)


def serve(fd: int) -> NoReturn:
    """The jail server of one builder process: for each request on the SOCK_SEQPACKET socket
    *fd* (a CONFIG path, with the write end of the RUN's output pipe attached), fork a child
    that starts a session of its own and runs :func:`run` with the pipe as its stdout and
    stderr; answer ``pid <child>`` at once, ``exit <wait status>`` when it has ended.

    This process never starts a thread, so its children may ``unshare(CLONE_NEWUSER)``; each
    RUN costs a ``fork`` instead of a new interpreter.  When the builder goes (its end of the
    socket closes: it ended, or died), a RUN still going is killed and the server exits."""
    sock = socket.socket(fileno=fd)
    with contextlib.suppress(SetupError):  # loaded once; each jail's dlopen finds it loaded
        load_libseccomp()
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(sock, 8192, 1)
        except OSError:
            os._exit(0)
        if not message or len(fds) != 1:
            os._exit(0)
        out = fds[0]
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            try:
                sock.close()
                os.setsid()
                os.dup2(out, 1)
                os.dup2(out, 2)
                os.close(out)
                run(message.decode())
            except BaseException as exc:  # never return into the server's loop
                with contextlib.suppress(OSError):
                    os.write(2, f"strata: the RUN jail failed: {exc!r}\n".encode())
            finally:
                os._exit(125)
        os.close(out)
        pidfd = os.pidfd_open(pid)
        try:
            sock.sendall(f"pid {pid}".encode())
            while True:
                ready, _, _ = select.select([pidfd, sock.fileno()], [], [])
                if pidfd in ready:
                    break
                # the builder never speaks during a RUN: this is its end closing
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                os._exit(0)
            _, status = os.waitpid(pid, 0)
            sock.sendall(f"exit {status}".encode())
        except OSError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            os._exit(0)
        finally:
            os.close(pidfd)


def main() -> None:
    if sys.argv[1] == "--serve":
        serve(int(sys.argv[2]))
    run(sys.argv[1])


if __name__ == "__main__":
    main()
