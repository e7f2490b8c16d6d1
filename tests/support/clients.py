"""The real OCI clients the interop tier drives, configured per test.

- :func:`require_tool`: the path of ``skopeo``/``podman``/``buildah``/``umoci``/``runc``/
  ``busybox``; a missing one FAILS the test when ``$CI`` is set (the message names the Debian
  package) and skips it otherwise, so a developer without it can run the rest.
- :class:`Containers`: a private containers configuration in a temp dir (``containers.conf``,
  ``registries.conf``, ``storage.conf``, ``policy.json``, ``auth.json``) passed to
  podman/buildah/skopeo through ``CONTAINERS_CONF``, ``CONTAINERS_REGISTRIES_CONF``,
  ``CONTAINERS_STORAGE_CONF``, ``REGISTRY_AUTH_FILE`` (and ``--policy`` for skopeo), so tests
  never touch ``/var/lib/containers``, ``/run/libpod`` or root's login.
- :func:`build_busybox_layout`: a runnable busybox image as an OCI image layout, made with umoci
  from Debian's static busybox, without network.

Settings for this machine (Debian 12, root in a sandbox, cgroup v1, no systemd/journald):

- ``default_ulimits`` within the hard limits (required: podman's default nofile=1048576 is above
  the sandbox's hard limit of 20000 and runc fails with "error setting rlimits");
- a ``runroot`` of at most 50 characters (required: see :class:`Containers`);
- ``runtime="runc"`` (crun fails on this kernel's cgroup mix, and is not installed here),
  ``cgroup_manager="cgroupfs"`` (no systemd), ``events_logger="file"`` (no journald),
  ``netns="none"`` (no bridge or firewall rules on the host: nothing here needs a network);
- storage driver ``vfs``, everything under the test's temp dir (overlay works too as root, but
  vfs needs nothing from the kernel and leaves no mounts behind).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
import resource
import shutil
import struct
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

DEBIAN_PACKAGES = {
    "skopeo": "skopeo",
    "podman": "podman",
    "buildah": "buildah",
    "umoci": "umoci",
    "runc": "runc",
    "busybox": "busybox-static",
    "chromium": "chromium",
    "docker": "docker.io",
    "dockerd": "docker.io",
}

DEFAULT_TIMEOUT = 180.0

log = logging.getLogger("support.clients")


def in_ci() -> bool:
    return bool(os.environ.get("CI"))


def missing(what: str, install: str) -> None:
    """Fail (in CI) or skip (elsewhere): ``what`` is missing, ``install`` says how to get it."""
    message = f"{what}: {install}"
    if in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def require_tool(name: str) -> str:
    """The absolute path of the client ``name``, or fail/skip naming its Debian package."""
    path = shutil.which(name)
    if path is None:
        package = DEBIAN_PACKAGES.get(name, name)
        missing(f"{name} is not on PATH", f"install the Debian package {package!r} "
                f"(apt-get install {package})")
    assert path is not None
    return path


def require_static_busybox() -> Path:
    """Debian's busybox-static binary (a dynamic busybox would not run in an empty image)."""
    path = Path(require_tool("busybox")).resolve()
    if not is_static_elf(path):
        missing(f"{path} is a dynamically linked busybox, a static one is needed",
                "install the Debian package 'busybox-static' (apt-get install busybox-static)")
    return path


def is_static_elf(path: Path) -> bool:
    """True when the 64-bit little-endian ELF at ``path`` has no PT_INTERP program header."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return False
    (phoff,) = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    for i in range(phnum):
        (p_type,) = struct.unpack_from("<I", data, phoff + i * phentsize)
        if p_type == 3:  # PT_INTERP
            return False
    return True


def run(cmd: Sequence[str], *, env: Mapping[str, str] | None = None,
        timeout: float = DEFAULT_TIMEOUT, check: bool = True,
        cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run a client; on failure raise with its command line, stdout and stderr."""
    started = time.monotonic()
    proc = subprocess.run(list(cmd), env=dict(env) if env is not None else None,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout, check=False, cwd=cwd)
    log.info("%.2fs exit %d: %s", time.monotonic() - started, proc.returncode, " ".join(cmd))
    if check and proc.returncode != 0:
        raise AssertionError(f"command failed with exit code {proc.returncode}: "
                             f"{' '.join(cmd)}\n--- stdout\n{proc.stdout}\n"
                             f"--- stderr\n{proc.stderr}")
    return proc


def default_ulimits() -> list[str]:
    """Container ulimits within this process's hard limits.

    podman's own default (nofile 1048576) is above the sandbox's hard limit (nofile 20000), and
    runc may not raise it there ("error setting rlimits ... operation not permitted"). On this
    machine this gives ``["nofile=20000:20000", "nproc=32768:32768"]``.
    """
    out = []
    for name, which, cap in (("nofile", resource.RLIMIT_NOFILE, 20000),
                             ("nproc", resource.RLIMIT_NPROC, 32768)):
        hard = resource.getrlimit(which)[1]
        value = cap if hard == resource.RLIM_INFINITY else min(hard, cap)
        out.append(f"{name}={value}:{value}")
    return out


def _short_tmp() -> str | None:
    """``/tmp`` when it exists (``$TMPDIR`` may be long), else the default temp dir."""
    return "/tmp" if os.path.isdir("/tmp") else None


def _toml_str(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


class Containers:
    """A private podman/buildah/skopeo configuration under ``root`` for one registry.

    ``registry`` is the ``HOST:PORT`` that is marked insecure (plain HTTP); ``credentials``
    (user, password) for it go into a private auth file (``REGISTRY_AUTH_FILE``, which all
    three clients read; without them they pull anonymously). Run the clients
    with :meth:`podman`, :meth:`buildah`, :meth:`skopeo`; :meth:`cleanup` removes containers
    and unmounts anything left under ``root``.
    """

    def __init__(self, root: Path, registry: str,
                 credentials: tuple[str, str] | None = None) -> None:
        self.root = Path(root)
        self.registry = registry
        self.root.mkdir(parents=True, exist_ok=True)
        for sub in ("graph", "tmp", "networks"):
            (self.root / sub).mkdir(exist_ok=True)
        # podman refuses a --runroot longer than 50 characters, and it passes its runroot to
        # conmon's exit command ("podman container cleanup"): with a long one the cleanup fails
        # and every "podman run" hangs for 20 s waiting for an exit code. Keep it short.
        self.runroot = Path(tempfile.mkdtemp(prefix="strata-run-", dir=_short_tmp()))
        assert len(str(self.runroot)) <= 50, self.runroot
        self.containers_conf = self.root / "containers.conf"
        self.registries_conf = self.root / "registries.conf"
        self.storage_conf = self.root / "storage.conf"
        self.policy = self.root / "policy.json"
        self.containers_conf.write_text(
            "[containers]\n"
            'netns="none"\n'
            f"default_ulimits={json.dumps(default_ulimits())}\n"
            "\n[engine]\n"
            'cgroup_manager="cgroupfs"\n'
            'events_logger="file"\n'
            f"events_logfile_path={_toml_str(str(self.root / 'tmp' / 'events.log'))}\n"
            'runtime="runc"\n'
            f"tmp_dir={_toml_str(str(self.root / 'tmp'))}\n"
            "\n[network]\n"
            f"network_config_dir={_toml_str(str(self.root / 'networks'))}\n")
        self.registries_conf.write_text(
            "unqualified-search-registries = []\n"
            "\n[[registry]]\n"
            f"location={_toml_str(registry)}\n"
            "insecure=true\n")
        self.storage_conf.write_text(
            "[storage]\n"
            'driver="vfs"\n'
            f"graphroot={_toml_str(str(self.root / 'graph'))}\n"
            f"runroot={_toml_str(str(self.runroot))}\n")
        self.policy.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
        # Our own auth file, never root's /run/containers/0/auth.json; "podman login" writes here.
        self.auth_file = self.root / "auth.json"
        auths: dict[str, dict[str, str]] = {}
        if credentials is not None:
            token = base64.b64encode(f"{credentials[0]}:{credentials[1]}".encode()).decode()
            auths[registry] = {"auth": token}
        self.auth_file.write_text(json.dumps({"auths": auths}))
        self.env = {
            **os.environ,
            "CONTAINERS_CONF": str(self.containers_conf),
            "CONTAINERS_REGISTRIES_CONF": str(self.registries_conf),
            "CONTAINERS_STORAGE_CONF": str(self.storage_conf),
            "REGISTRY_AUTH_FILE": str(self.auth_file),
        }

    def podman(self, *args: str, timeout: float = DEFAULT_TIMEOUT,
               check: bool = True) -> subprocess.CompletedProcess[str]:
        return run([require_tool("podman"), *args], env=self.env, timeout=timeout, check=check)

    def buildah(self, *args: str, timeout: float = DEFAULT_TIMEOUT,
                check: bool = True) -> subprocess.CompletedProcess[str]:
        return run([require_tool("buildah"), *args], env=self.env, timeout=timeout,
                   check=check)

    def skopeo(self, command: str, *args: str, timeout: float = DEFAULT_TIMEOUT,
               check: bool = True) -> subprocess.CompletedProcess[str]:
        """``skopeo --policy P COMMAND <tls flags> ARGS``: plain HTTP for every registry."""
        if command in ("copy", "sync"):
            tls = ["--src-tls-verify=false", "--dest-tls-verify=false"]
        elif command in ("inspect", "list-tags", "delete", "login", "logout"):
            tls = ["--tls-verify=false"]
        else:
            tls = []
        return run([require_tool("skopeo"), "--policy", str(self.policy), command, *tls, *args],
                   env=self.env, timeout=timeout, check=check)

    def cleanup(self) -> None:
        """Remove leftover containers and unmount whatever is still mounted under ``root``."""
        for tool, args in (("podman", ("rm", "--all", "--force")),
                           ("buildah", ("rm", "--all"))):
            path = shutil.which(tool)
            if path is not None and (self.root / "graph").exists():
                with contextlib.suppress(subprocess.TimeoutExpired):
                    run([path, *args], env=self.env, timeout=60, check=False)
        roots = [str(self.root.resolve()), str(self.runroot.resolve())]
        mounts = []
        with contextlib.suppress(OSError), open("/proc/self/mounts") as fh:
            for line in fh:
                target = line.split()[1].replace("\\040", " ")
                if any(target == root or target.startswith(root + "/") for root in roots):
                    mounts.append(target)
        for target in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", target], check=False, capture_output=True)
        shutil.rmtree(self.runroot, ignore_errors=True)


@dataclass(frozen=True)
class OciLayout:
    """An OCI image layout on disk holding one tagged image manifest."""

    path: Path
    tag: str
    manifest_digest: str
    config_digest: str
    layer_digests: tuple[str, ...]
    message: str  # what the image's default command prints

    @property
    def ref(self) -> str:
        """The skopeo/podman reference: ``oci:PATH:TAG``.

        podman and buildah name an image pulled from a layout after its path, which must then
        be lower case: a path with capitals (a temp dir's random suffix) goes through a
        lower-case symlink.
        """
        path = str(self.path)
        if path != path.lower():
            digest = hashlib.sha256(path.encode()).hexdigest()[:16]
            link = Path("/tmp") / f"strata-oci-{digest}"
            if not link.is_symlink():
                link.symlink_to(self.path)
            path = str(link)
        return f"oci:{path}:{self.tag}"

    def blob(self, digest: str) -> bytes:
        algorithm, encoded = digest.split(":", 1)
        return (self.path / "blobs" / algorithm / encoded).read_bytes()

    def manifest_bytes(self) -> bytes:
        return self.blob(self.manifest_digest)


def build_busybox_layout(dest: Path, *, tag: str = "latest",
                         message: str = "hello from strata",
                         labels: Mapping[str, str] | None = None,
                         files: Mapping[str, bytes] | None = None) -> OciLayout:
    """A busybox image (``/bin/busybox``, ``/bin/sh``) at ``dest`` whose command prints
    ``message``, with ``files`` (absolute path in the image -> content) added; one layer,
    built with ``umoci`` from the static busybox on this machine."""
    umoci = require_tool("umoci")
    busybox = require_static_busybox()
    dest = Path(dest)
    bundle = dest.parent / f"{dest.name}.bundle"
    image = f"{dest}:{tag}"
    rootless = ["--rootless"] if os.geteuid() != 0 else []
    run([umoci, "init", "--layout", str(dest)])
    run([umoci, "new", "--image", image])
    run([umoci, "unpack", *rootless, "--image", image, str(bundle)])
    bindir = bundle / "rootfs" / "bin"
    bindir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(busybox, bindir / "busybox")
    (bindir / "busybox").chmod(0o755)
    (bindir / "sh").symlink_to("busybox")
    (bindir / "echo").symlink_to("busybox")
    (bindir / "cat").symlink_to("busybox")
    for name, content in (files or {}).items():
        path = bundle / "rootfs" / name.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    run([umoci, "repack", "--image", image, str(bundle)])
    config_args = ["--config.cmd", "/bin/sh", "--config.cmd", "-c",
                   "--config.cmd", f"echo {message}",
                   "--config.env", "PATH=/bin"]
    for key, value in (labels or {}).items():
        config_args += ["--config.label", f"{key}={value}"]
    run([umoci, "config", "--image", image, *config_args])
    run([umoci, "gc", "--layout", str(dest)])
    shutil.rmtree(bundle)

    index = json.loads((dest / "index.json").read_text())
    (entry,) = [m for m in index["manifests"]
                if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag]
    manifest_digest = entry["digest"]
    algorithm, encoded = manifest_digest.split(":", 1)
    raw = (dest / "blobs" / algorithm / encoded).read_bytes()
    assert f"{algorithm}:{hashlib.new(algorithm, raw).hexdigest()}" == manifest_digest
    manifest = json.loads(raw)
    return OciLayout(
        path=dest, tag=tag, manifest_digest=manifest_digest,
        config_digest=manifest["config"]["digest"],
        layer_digests=tuple(layer["digest"] for layer in manifest["layers"]),
        message=message)


def sha256_digest(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"
