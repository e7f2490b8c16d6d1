"""Helpers of the build tier: a busybox root filesystem, the ``strata`` CLI run in-process
against a server, Containerfile contexts and git repositories.

Builds run RUN steps in a jail (user namespace, idmapped overlay): the tier needs root, user
namespaces and overlay mounts (skipped outside CI when they are missing, like the interop clients).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from strata.cli.main import cli
from support.clients import missing, require_static_busybox
from support.server import StrataServer

NAMESPACE = "bt"
DIST_TAG = "bt1docker"
BASE = "busybox-bt"
BASE_VERSION = "1.36"
APPLETS = ("sh", "echo", "cat", "ls", "mkdir", "rm", "id", "touch", "chmod", "ln", "seq",
           "head", "dd", "wc", "sleep", "hostname", "ip", "true", "false", "printf", "env",
           "test", "cp", "mv", "find", "grep", "sed", "tr", "stat", "date")
PASSWD = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n" \
         "nobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n"
GROUP = "root:x:0:\napp:x:1000:\nstaff:x:50:app\nnogroup:x:65534:\n"


def sandbox_available() -> None:
    if os.geteuid() != 0 or not Path("/proc/self/ns/user").exists():
        missing("root and user namespaces for the RUN jail", "run the tests as root")


def make_rootfs(dest: Path) -> Path:
    """A tiny root filesystem around Debian's static busybox, as a .tar.gz."""
    busybox = require_static_busybox()
    root = dest / "rootfs"
    for sub in ("bin", "etc", "tmp", "root", "home/app", "var/lib"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    shutil.copy2(busybox, root / "bin" / "busybox")
    (root / "bin" / "busybox").chmod(0o755)
    for applet in APPLETS:
        (root / "bin" / applet).symlink_to("busybox")
    (root / "etc" / "passwd").write_text(PASSWD)
    (root / "etc" / "group").write_text(GROUP)
    (root / "tmp").chmod(0o1777)
    os.chown(root / "home" / "app", 1000, 1000)
    tarball = dest / "rootfs.tar.gz"
    with tarfile.open(tarball, "w:gz") as tf:
        tf.add(root, arcname=".")
    return tarball


@dataclass
class Strata:
    """The ``strata`` CLI, in-process, pointed at the build tier's server."""

    server: StrataServer
    env: dict[str, str]

    def __call__(self, *args: str, env: Mapping[str, str] | None = None) -> Result:
        runner = CliRunner()
        return runner.invoke(cli, list(args), env={**self.env, **(env or {})},
                             catch_exceptions=False)

    def json(self, *args: str) -> Any:
        result = self(*args, "--json")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    def build(self, context: Path | str, *args: str) -> dict[str, Any]:
        data: dict[str, Any] = self.json("build", str(context), *args)
        return data

    def get(self, path: str) -> bytes:
        resp = self.server.request("GET", path, headers={
            **self.server.admin_headers,
            "Accept": "application/vnd.oci.image.manifest.v1+json, "
                      "application/vnd.oci.image.index.v1+json"})
        assert resp.status == 200, (path, resp.status, resp.body[:300])
        return resp.body

    def get_json(self, path: str) -> Any:
        return json.loads(self.get(path))

    def image(self, repo: str, digest: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """(manifest, config) of ``repo@digest``."""
        manifest = self.get_json(f"/v2/{repo}/manifests/{digest}")
        config = self.get_json(f"/v2/{repo}/blobs/{manifest['config']['digest']}")
        return manifest, config

    def layer_members(self, repo: str, digest: str, tmp: Path) -> dict[str, tarfile.TarInfo]:
        path = tmp / digest.replace(":", "-")
        path.write_bytes(self.get(f"/v2/{repo}/blobs/{digest}"))
        with tarfile.open(path, "r:*") as tf:
            return {member.name: member for member in tf.getmembers()}


def write_context(root: Path, containerfile: str, files: Mapping[str, str] | None = None
                  ) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "Containerfile").write_text(textwrap.dedent(containerfile).lstrip())
    for name, text in (files or {}).items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


#: The images the build tier's session server builds, registered directly (``strata image
#: add``) by its fixture: candidates are registered only for approved images (issue 14).
BUILT_IMAGES = ("again", "anycheckout", "bad", "bomb", "failing", "fromgit", "hello", "helpful",
                "helpless", "hostile", "human", "inherits", "interop", "net", "net2", "noisy",
                "pinned", "random", "reuse", "slow", "spill", "twice", "unlabelled")


def labels_block(name: str, version: str = "1") -> str:
    return (f'LABEL name="$FGC/{name}" version="{version}" summary="test image {name}" '
            f'maintainer="Build Tests <bt@example.com>" usage="podman run {name}"')


def git(repo: Path, *args: str, env: Mapping[str, str] | None = None) -> str:
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          check=True, env={**os.environ, **(env or {})})
    return proc.stdout.strip()
