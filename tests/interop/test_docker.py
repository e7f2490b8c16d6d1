"""docker (Debian's docker.io) against strata: login, push, pull and run (issue 17).

The test starts a ``dockerd`` of its own: data root, exec root and API socket in a temporary
directory, the vfs storage driver, no bridge and no iptables (this sandbox has no network
namespace for it to manage), the session's strata marked insecure (plain HTTP on loopback).
Containers run with ``--network none``.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.clients import require_static_busybox, require_tool, run
from support.server import StrataServer

pytestmark = [pytest.mark.server, pytest.mark.interop]


class Docker:
    def __init__(self, root: Path, registry: str) -> None:
        self.root = root
        self.registry = registry
        self.socket = root / "d.sock"
        self.env = {**os.environ, "DOCKER_HOST": f"unix://{self.socket}",
                    "DOCKER_CONFIG": str(root / "config")}
        self.env.pop("DOCKER_CONTEXT", None)
        self.docker = require_tool("docker")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Docker:
        dockerd = require_tool("dockerd")
        (self.root / "data").mkdir()
        (self.root / "exec").mkdir()
        self.log = (self.root / "dockerd.log").open("wb")
        self.proc = subprocess.Popen(
            [dockerd, "--data-root", str(self.root / "data"),
             "--exec-root", str(self.root / "exec"), "-H", f"unix://{self.socket}",
             "--pidfile", str(self.root / "dockerd.pid"), "--storage-driver", "vfs",
             "--bridge", "none", "--iptables=false", "--ip6tables=false",
             "--insecure-registry", self.registry],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"dockerd exited: {self.log_text()}")
            if self("info", check=False).returncode == 0:
                return self
            time.sleep(0.5)
        raise AssertionError(f"dockerd did not answer in 120 s: {self.log_text()}")

    def log_text(self) -> str:
        return (self.root / "dockerd.log").read_text(errors="replace")[-4000:]

    def __call__(self, *args: str, check: bool = True, stdin: str | None = None,
                 timeout: float = 300) -> subprocess.CompletedProcess[str]:
        if stdin is None:
            return run([self.docker, *args], env=self.env, check=check, timeout=timeout)
        proc = subprocess.run([self.docker, *args], env=self.env, input=stdin,
                              capture_output=True, text=True, timeout=timeout, check=False)
        assert not check or proc.returncode == 0, (args, proc.stdout, proc.stderr)
        return proc

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # dockerd stops its containerd and containers
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture(scope="module")
def docker(registry: StrataServer) -> Iterator[Docker]:
    require_tool("docker")
    require_tool("dockerd")
    # A short path: the API socket's path must fit a sockaddr_un.
    root = Path(tempfile.mkdtemp(prefix="strata-dk-", dir="/tmp"))
    client = Docker(root, registry.host_port)
    try:
        yield client.start()
    finally:
        client.stop()
        shutil.rmtree(root, ignore_errors=True)


def busybox_rootfs(dest: Path, extra: bytes = b"") -> Path:
    """A tar of a root filesystem with Debian's static busybox as /bin/busybox and /bin/sh
    (and ``extra`` as /big.bin where given)."""
    busybox = require_static_busybox()
    with tarfile.open(dest, "w") as tar:
        if extra:
            big = tarfile.TarInfo("big.bin")
            big.size = len(extra)
            tar.addfile(big, io.BytesIO(extra))
        info = tar.gettarinfo(str(busybox), arcname="bin/busybox")
        info.uid = info.gid = 0
        with busybox.open("rb") as f:
            tar.addfile(info, f)
        link = tarfile.TarInfo("bin/sh")
        link.type, link.linkname = tarfile.SYMTYPE, "busybox"
        tar.addfile(link)
    return dest


def test_docker_logs_in_pushes_pulls_and_runs(docker: Docker, registry: StrataServer,
                                              tmp_path: Path) -> None:
    ref = f"{registry.host_port}/docker/busybox:v1"
    # 3 MiB that do not compress: the layer's upload body is a big one (see server.rawbody)
    big = os.urandom(3 << 20)
    docker("import", str(busybox_rootfs(tmp_path / "rootfs.tar", big)), ref)
    # Anonymous: pushing is refused.
    refused = docker("push", ref, check=False)
    assert refused.returncode != 0
    assert "unauthorized" in (refused.stdout + refused.stderr).lower() or \
        "denied" in (refused.stdout + refused.stderr).lower(), refused.stderr
    wrong = docker("login", "-u", registry.admin_user, "--password-stdin", registry.host_port,
                   stdin="not-the-password\n", check=False)
    assert wrong.returncode != 0
    docker("login", "-u", registry.admin_user, "--password-stdin", registry.host_port,
           stdin=registry.admin_password + "\n")
    pushed = docker("push", ref).stdout
    digest = pushed.rsplit("digest: ", 1)[1].split()[0]
    assert digest.startswith("sha256:")
    stored = registry.request("HEAD", f"/v2/docker/busybox/manifests/{digest}",
                              headers=registry.admin_headers)
    assert stored.status == 200 and stored.header("Docker-Content-Digest") == digest

    # Pull it back as an anonymous client into an empty image store, then run it.
    docker("logout", registry.host_port)
    docker("rmi", ref)
    assert docker("image", "inspect", ref, check=False).returncode != 0
    pulled = docker("pull", ref).stdout
    assert digest in pulled, pulled
    out = docker("run", "--rm", "--network", "none", ref, "/bin/busybox", "echo",
                 "hello from docker").stdout
    assert out.strip() == "hello from docker"
    summed = docker("run", "--rm", "--network", "none", ref, "/bin/busybox", "sha256sum",
                    "/big.bin").stdout
    assert summed.split()[0] == hashlib.sha256(big).hexdigest()
    by_digest = f"{registry.host_port}/docker/busybox@{digest}"
    docker("pull", by_digest)
    repo_digests = docker("image", "inspect", "--format", "{{json .RepoDigests}}", ref).stdout
    assert by_digest in repo_digests
