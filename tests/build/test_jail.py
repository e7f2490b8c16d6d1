"""The RUN jail against a hostile RUN: each escape is refused and the host is unharmed.

The attacks are a static C program (``jail/attack.c``, built with gcc at test time) run as
the RUN command on a busybox image, first through :func:`run_in_sandbox` (each attack on
its own), then in real ``strata build``\\ s against the tier's server.  A secret file on
the host stands for the signing keys and the database.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from build_support import (
    APPLETS,
    BASE,
    BASE_VERSION,
    DIST_TAG,
    GROUP,
    NAMESPACE,
    PASSWD,
    Strata,
    git,
    labels_block,
    make_rootfs,
    sandbox_available,
    write_context,
)

from strata.build.errors import BuildError
from strata.build.jail import SUBID_BASE, Cgroup, JailLimits
from strata.build.sandbox import RunSpec, SandboxResult, run_in_sandbox
from strata.image.layer import diff_tree
from support.clients import missing, require_static_busybox, require_tool
from support.server import StrataServer

ATTACK_SOURCE = Path(__file__).with_name("jail") / "attack.c"
EXTRA_APPLETS = ("chroot", "mount", "mknod", "kill", "unshare", "nsenter", "pivot_root",
                 "chown", "ps")


@pytest.fixture(scope="module")
def attack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    gcc = require_tool("gcc")
    out = tmp_path_factory.mktemp("attack") / "attack"
    subprocess.run([gcc, "-static", "-O1", "-o", str(out), str(ATTACK_SOURCE)], check=True)
    return out


def make_root(root: Path, attack: Path) -> Path:
    (root / "bin").mkdir(parents=True)
    (root / "etc").mkdir()
    (root / "tmp").mkdir(mode=0o1777)
    shutil.copy2(require_static_busybox(), root / "bin" / "busybox")
    shutil.copy2(attack, root / "bin" / "attack")
    for applet in {*APPLETS, *EXTRA_APPLETS}:
        (root / "bin" / applet).symlink_to("busybox")
    (root / "etc" / "passwd").write_text(PASSWD)
    (root / "etc" / "group").write_text(GROUP)
    return root


@pytest.fixture
def lower(tmp_path: Path, attack: Path) -> Path:
    return make_root(tmp_path / "lower", attack)


@pytest.fixture
def secret(tmp_path: Path) -> tuple[Path, str]:
    """A key file on the host, as the server keeps its signing keys: root-only."""
    token = secrets.token_hex(16)
    keys = tmp_path / "data" / "keys"
    keys.mkdir(parents=True)
    path = keys / "signing.key"
    path.write_text(token)
    path.chmod(0o600)
    return path, token


def jail(lower: Path, step: Path, *argv: str, limits: JailLimits | None = None,
         user: str = "") -> SandboxResult:
    spec = RunSpec(tuple(argv), ("PATH=/bin",), user=user, limits=limits or JailLimits())
    return run_in_sandbox([lower], step, spec)


def lines(result: SandboxResult) -> dict[str, str]:
    out = {}
    for line in result.output.decode().splitlines():
        name, _, rest = line.partition(": ")
        out[name] = rest
    return out


def test_root_inside_is_an_unprivileged_uid_outside(lower: Path, tmp_path: Path) -> None:
    result = jail(lower, tmp_path / "s", "/bin/sh", "-c",
                  "cat /proc/self/uid_map /proc/self/gid_map; "
                  "grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status; "
                  "ls /; cat /proc/self/cgroup | grep -v :/$ ; id -u")
    assert result.exit_code == 0, result.output
    out = result.output.decode().split("\n")
    assert out[0].split() == ["0", str(SUBID_BASE), "65536"]
    assert out[1].split() == ["0", str(SUBID_BASE), "65536"]
    status = dict(line.split(":\t") for line in out[2:6])
    cap_eff = int(status["CapEff"], 16)
    assert cap_eff == int(status["CapBnd"], 16)
    assert not cap_eff & (1 << 21)  # CAP_SYS_ADMIN
    assert not cap_eff & (1 << 19)  # CAP_SYS_PTRACE
    assert not cap_eff & (1 << 16)  # CAP_SYS_MODULE
    assert cap_eff & 1  # CAP_CHOWN: package installs chown their files
    assert status["NoNewPrivs"] == "1" and status["Seccomp"] == "2"
    assert out[6:-2] == ["bin", "dev", "etc", "proc", "tmp"]  # nothing of the host's
    assert out[-2] == "0"


def test_layer_ownership_is_what_the_image_expects(lower: Path, tmp_path: Path) -> None:
    """Root inside writes uid 0 files (not 100000) and chown inside gives the ids asked."""
    result = jail(lower, tmp_path / "s", "/bin/sh", "-c",
                  "echo a > /rootfile && mkdir -p /home/app && echo b > /home/app/f && "
                  "chown -R 1000:50 /home/app && chown 65534:65534 /etc/passwd && "
                  "stat -c '%u:%g %n' /bin/busybox /rootfile /home/app/f")
    assert result.exit_code == 0, result.output
    assert result.output.decode().split("\n")[:3] == [
        "0:0 /bin/busybox", "0:0 /rootfile", "1000:50 /home/app/f"]
    upper = result.upper
    owners = {rel: (os.lstat(upper / rel).st_uid, os.lstat(upper / rel).st_gid)
              for rel in ("rootfile", "home", "home/app/f", "etc/passwd")}
    assert owners == {"rootfile": (0, 0), "home": (0, 0), "home/app/f": (1000, 50),
                      "etc/passwd": (65534, 65534)}
    entries = {e.path: (e.uid, e.gid) for e in diff_tree(
        [lower], upper, source_date_epoch=0, owner=lambda uid, gid: (uid, gid))}
    assert entries["rootfile"] == (0, 0) and entries["home/app/f"] == (1000, 50)
    # the lower layer was not touched through its idmapped mount
    assert os.lstat(lower / "etc" / "passwd").st_uid == 0


def test_the_builders_umask_does_not_matter(lower: Path, tmp_path: Path) -> None:
    """strata serve runs with umask 077: the jail still starts, the RUN gets umask 022
    (so a layer does not depend on who built it) and a USER can walk the image."""
    saved = os.umask(0o077)
    try:
        result = jail(lower, tmp_path / "s", "/bin/sh", "-c",
                      "umask; touch /f; mkdir /d; stat -c '%a %n' / /f /d")
        as_user = jail(lower, tmp_path / "u", "/bin/sh", "-c", "head -c 4 /etc/passwd",
                       user="app")
    finally:
        os.umask(saved)
    assert result.exit_code == 0, result.output
    assert result.output.decode().split("\n")[:4] == ["0022", "755 /", "644 /f", "755 /d"]
    assert (as_user.exit_code, as_user.output) == (0, b"root")


def test_cannot_read_the_hosts_files(lower: Path, tmp_path: Path,
                                     secret: tuple[Path, str]) -> None:
    path, token = secret
    up = "../" * 30
    result = jail(lower, tmp_path / "s", "/bin/attack", "read", str(path),
                  f"/proc/1/root{path}", f"/proc/self/root{path}", f"{up}{str(path)[1:]}",
                  f"/proc/1/cwd/{up}{str(path)[1:]}", str(tmp_path / "data"))
    out = result.output.decode()
    assert token not in out
    found = lines(result)
    assert len(found) == 6, out
    assert list(found.values()) == [
        "denied (No such file or directory)",  # not in the jail's root
        "denied (Permission denied)",  # /proc/1 is the jail's PID 1, and not dumpable
        "denied (No such file or directory)",
        "denied (No such file or directory)",  # ".." of the jail's root is its root
        "denied (Permission denied)",
        "denied (No such file or directory)"], out


def test_chroot_escape_stays_in_the_jail(lower: Path, tmp_path: Path,
                                         secret: tuple[Path, str]) -> None:
    path, token = secret
    result = jail(lower, tmp_path / "s", "/bin/attack", "chroot", str(path))
    assert token not in result.output.decode()
    # chroot works (package scripts use it) but ".." of the jail's root is the jail's root
    assert lines(result) == {"chroot escape": "denied (No such file or directory)"}


def test_no_way_back_to_the_old_root(lower: Path, tmp_path: Path) -> None:
    result = jail(lower, tmp_path / "s", "/bin/attack", "pivot")
    assert lines(result) == {
        "pivot_root": "denied (Operation not permitted)",
        "umount /": "denied (Operation not permitted)",
        "setns": "denied (Permission denied)",  # /proc/1/ns of an undumpable PID 1
        "unshare user": "denied (Operation not permitted)",
        "unshare mount": "denied (Operation not permitted)"}
    result = jail(lower, tmp_path / "s2", "/bin/sh", "-c",
                  "unshare -U -r true; nsenter -t 1 -m true; pivot_root / /; echo $?")
    assert result.exit_code == 0 and result.output.decode().endswith("1\n")


def test_cannot_mount_a_host_disk(lower: Path, tmp_path: Path,
                                  secret: tuple[Path, str]) -> None:
    dev = os.stat(secret[0]).st_dev
    result = jail(lower, tmp_path / "s", "/bin/attack", "mount", str(os.major(dev)),
                  str(os.minor(dev)))
    assert lines(result) == {
        "mknod disk": "denied (Operation not permitted)",
        "mount disk": "denied (Operation not permitted)",
        "mount /dev/vda": "denied (Operation not permitted)",
        "mount proc": "denied (Operation not permitted)",
        "mount tmpfs": "denied (Operation not permitted)"}
    result = jail(lower, tmp_path / "s2", "/bin/sh", "-c",
                  "ls /dev; mount -t tmpfs none /tmp || echo refused")
    assert result.output.decode().split() == [
        "fd", "full", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin", "stdout",
        "tty", "urandom", "zero", *result.output.decode().split()[13:-1], "refused"]


def test_cannot_signal_or_trace_the_server(lower: Path, tmp_path: Path) -> None:
    server = subprocess.Popen(["sleep", "60"])  # stands for `strata serve`
    try:
        result = jail(lower, tmp_path / "s", "/bin/attack", "signal", str(server.pid))
        assert lines(result) == {
            "kill server": "denied (No such process)",  # host pids do not exist in there
            "ptrace server": "denied (Operation not permitted)",
            "proc of server": "denied (No such file or directory)",
            "ptrace init": "denied (Operation not permitted)",
            "proc of init": "denied (Permission denied)"}  # PID 1 is not dumpable
        for pid in (server.pid, os.getpid(), 1):
            got = jail(lower, tmp_path / f"k{pid}", "/bin/sh", "-c", f"kill -9 {pid}; echo $?")
            assert got.output.decode().endswith("1\n") or pid == 1, got.output
        assert server.poll() is None  # unharmed
    finally:
        server.kill()
        server.wait()


def test_fork_bomb_is_bounded(lower: Path, tmp_path: Path) -> None:
    limits = JailLimits(pids=64)
    result = jail(lower, tmp_path / "s", "/bin/attack", "forkbomb", limits=limits)
    found = lines(result)
    count = int(found["forkbomb"].split()[2])
    assert 0 < count < 64, found
    assert found["forkbomb"].endswith("(Resource temporarily unavailable)")
    # a shell fork bomb: killed by the time limit, and the host can still start processes
    started = time.monotonic()
    with pytest.raises(BuildError, match=r"RUN timed out after 3s"):
        jail(lower, tmp_path / "s2", "/bin/sh", "-c", "b() { b | b & }; b; sleep 60",
             limits=JailLimits(timeout=3, pids=64))
    assert time.monotonic() - started < 30
    assert subprocess.run(["true"], check=False).returncode == 0
    assert not [d for d in os.listdir("/sys/fs/cgroup/pids")
                if d.startswith(f"strata-run-{os.getpid()}-")]


def test_cgroups_of_killed_builders_are_swept(lower: Path, tmp_path: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    probe = Cgroup(JailLimits())
    parents = [path.parent for path in probe.dirs]
    probe.close()
    if not parents:
        missing("no cgroup controller can be delegated here: nothing to sweep",
                "run the tests as root with a writable cgroup v2 hierarchy, as CI does")
    stale = [parent / f"strata-run-{dead.pid}-0" for parent in parents]
    for path in stale:
        path.mkdir()
    try:
        assert jail(lower, tmp_path / "s", "/bin/true").exit_code == 0
        assert not [path for path in stale if path.exists()]
    finally:
        for path in stale:
            if path.exists():
                path.rmdir()


def test_memory_is_limited(lower: Path, tmp_path: Path) -> None:
    result = jail(lower, tmp_path / "s", "/bin/attack", "memory", "512",
                  limits=JailLimits(memory=64 << 20))
    assert result.exit_code == 128 + 9, result.output  # the OOM killer's SIGKILL
    assert b"ESCAPED" not in result.output


def test_run_as_a_user_has_no_capabilities(lower: Path, tmp_path: Path) -> None:
    result = jail(lower, tmp_path / "s", "/bin/sh", "-c",
                  "grep CapEff /proc/self/status; chown 0 /tmp || echo refused", user="app")
    assert result.output.decode().split()[:2] == ["CapEff:", "0000000000000000"]
    assert result.output.decode().rstrip().endswith("refused")


def test_without_root_the_build_says_why(lower: Path, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(BuildError, match=r"run `strata build` as root .*rootless RUN is not "
                                         r"supported"):
        jail(lower, tmp_path / "s", "/bin/true")


# -- through `strata build` against the tier's server ----------------------------------------
def test_hostile_build_is_refused_and_the_server_unharmed(
        strata: Strata, build_server: StrataServer, base_image: dict[str, Any],
        tmp_path: Path, attack: Path) -> None:
    data = build_server.data_dir
    # the database and the keys: what a RUN must not see
    files = [str(data / name) for name in ("strata.db", "auth/webhook-key")]
    assert all(Path(name).is_file() for name in files)
    shutil.copy2(attack, tmp_path / "attack")
    ctx = write_context(tmp_path / "ctx", f"""
        FROM {BASE}:1.36
        {labels_block("hostile")}
        COPY attack /bin/attack
        RUN /bin/attack read {" ".join(files)} /proc/1/root{files[0]} {data} ; \\
            /bin/attack signal {build_server.pid} ; /bin/attack pivot ; /bin/attack mount 1 1
        RUN cat {files[0]}
    """)
    shutil.copy2(attack, ctx / "attack")
    result = strata("build", str(ctx))
    out = result.stderr
    assert result.exit_code == 3, out
    assert "ESCAPED" not in out
    assert out.count(": denied (") == 4 + 5 + 5 + 5, out  # 4 reads: db, key, /proc, dir
    assert "line 6: RUN failed with exit code 1" in out
    assert f"cat: can't open '{files[0]}': No such file or directory" in out
    assert build_server.request("GET", "/v2/", headers=build_server.admin_headers).status == 200


def test_build_limits_are_settings(strata: Strata, base_image: dict[str, Any],
                                   tmp_path: Path) -> None:
    ctx = write_context(tmp_path / "ctx", f"""
        FROM {BASE}:1.36
        {labels_block("slow")}
        RUN echo started; sleep 60
    """)
    started = time.monotonic()
    result = strata("build", str(ctx), env={"STRATA_BUILD_RUN_TIMEOUT": "2"})
    assert result.exit_code == 1, result.output
    assert "RUN timed out after 2s" in result.stderr and "started" in result.stderr
    assert time.monotonic() - started < 30
    bomb = write_context(tmp_path / "bomb", f"""
        FROM {BASE}:1.36
        {labels_block("bomb")}
        RUN b() {{ b | b & }}; b; sleep 60
    """)
    result = strata("build", str(bomb), env={"STRATA_BUILD_RUN_TIMEOUT": "3",
                                               "STRATA_BUILD_RUN_PIDS": "50"})
    assert result.exit_code == 1 and "RUN timed out after 3s" in result.stderr
    bad = strata("build", str(ctx), env={"STRATA_BUILD_RUN_MEMORY": "lots"})
    assert bad.exit_code == 2 and "STRATA_BUILD_RUN_MEMORY='lots': not a number" in bad.stderr


# -- as a job of `strata serve` (the same jail, the server's limits) --------------------------
def test_a_hostile_job_on_the_server_fails_and_the_server_is_unharmed(
        tmp_path: Path, attack: Path) -> None:
    sandbox_available()
    when = {"GIT_AUTHOR_DATE": "2022-03-04T05:06:07Z", "GIT_COMMITTER_DATE":
            "2022-03-04T05:06:07Z", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x",
            "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@x"}
    with StrataServer(tmp_path / "srv", "--source-allow", "file://",
                      env={"STRATA_BUILD_POLL": "0.2", "STRATA_BUILD_RUN_TIMEOUT": "3"}
                      ) as server:
        tool = Strata(server, {"STRATA_URL": server.url, "STRATA_USER": server.admin_user,
                               "STRATA_PASSWORD": server.admin_password,
                               "STRATA_BUILD_CACHE": str(tmp_path / "cache")})
        assert tool("namespace", "add", NAMESPACE, "--dist-tag", DIST_TAG).exit_code == 0
        data = tool.json("base", "import", str(make_rootfs(tmp_path)), "--name", BASE,
                         "--version", BASE_VERSION, "--namespace", NAMESPACE)
        tool.json("release", "oob", f"{BASE}@{data['digest']}", "--advisory", "JB-1",
                  "--reason", "base of the jail's server test")
        key = server.data_dir / "auth" / "webhook-key"  # opens the signing keys
        assert key.is_file()
        jobs = {}
        for name, run in (("hostile", f"/bin/attack read {key} /proc/1/root{key} "
                                      f"{server.data_dir}/strata.db && "
                                      f"/bin/attack signal {server.pid} && cat {key}"),
                          ("sleepy", "echo started; sleep 60")):
            repo = write_context(tmp_path / name, f"""
                FROM {BASE}:{BASE_VERSION}
                {labels_block(name)}
                COPY attack /bin/attack
                RUN {run}
            """, {"help.md": "help\n"})
            shutil.copy2(attack, repo / "attack")
            git(repo, "init", "-q", "-b", DIST_TAG)
            git(repo, "add", ".")
            git(repo, "commit", "-q", "-m", "one", env=when)
            added = tool("image", "add", f"{NAMESPACE}/{name}", "--source-url",
                         f"file://{repo}", "--source-branch", DIST_TAG)
            assert added.exit_code == 0, added.output
            result = tool("build", f"{NAMESPACE}/{name}", "--json")
            jobs[name] = json.loads(result.stdout)
            jobs[name]["log"] = tool("build", "logs", str(jobs[name]["id"])).stdout
        hostile, sleepy = jobs["hostile"], jobs["sleepy"]
        assert hostile["state"] == "failed", hostile
        assert "ESCAPED" not in hostile["log"] and key.read_text() not in hostile["log"]
        assert hostile["log"].count(": denied (") == 8, hostile["log"]
        assert f"cat: can't open '{key}': No such file or directory" in hostile["log"]
        assert sleepy["state"] == "failed" and "started" in sleepy["log"]
        assert "RUN timed out after 3s" in (sleepy["error"] or ""), sleepy
        assert server.request("GET", "/v2/", headers=server.admin_headers).status == 200
