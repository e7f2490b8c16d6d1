"""``make image`` (issue 17): the container image of strata itself, built by strata's own builder,
runs under podman.

The test runs ``deploy/build_image.py`` -- the script ``make image`` runs -- which debootstraps
(or reuses from ``$STRATA_IMAGE_CACHE``, default ``/var/cache/strata-image``) a Debian 12 root
filesystem with python3, builds the wheels of this checkout, and builds ``deploy/Containerfile``
with ``strata build`` on a throwaway ``strata serve``, then exports it as an OCI archive. The
archive is loaded with ``podman load``, run with ``podman run`` (the port published with ``-p``,
the data dir a named volume, ``--ulimit nofile=N:N --ulimit nproc=M:M``
as docs/deploy.md says), and a busybox image
is pushed into the containerized strata and pulled back with skopeo; after ``podman stop`` and
``podman start`` the volume still holds it.

Needs root (debootstrap, the RUN jail), debootstrap, skopeo, podman, umoci, busybox-static; a
missing one fails in CI and skips elsewhere. Time (2 cores, loadavg 7-13): with no cached
rootfs debootstrap adds ~2.5 min; with it cached the test took 4 min 53 s (the build 171 s).
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from support.clients import (
    Containers,
    build_busybox_layout,
    default_ulimits,
    missing,
    require_tool,
)
from support.server import free_port

pytestmark = [pytest.mark.server, pytest.mark.interop]

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "deploy" / "build_image.py"
BUILD_TIMEOUT = 2400  # a fresh debootstrap on a loaded machine, the wheels, the build


def build_image_module() -> ModuleType:
    """``deploy/build_image.py`` as a module (it is a script, not a package)."""
    spec = importlib.util.spec_from_file_location("build_image", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def http_status(url: str, timeout: float = 5.0) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            status: int = resp.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code


def wait_healthy(url: str, container: str, env: Containers, deadline_s: float = 90) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            if http_status(f"{url}/healthz", timeout=2) == 200:
                return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    logs = env.podman("logs", container, check=False)
    raise AssertionError(f"the container did not answer /healthz in {deadline_s} s:\n"
                         f"{logs.stdout[-3000:]}\n{logs.stderr[-3000:]}")


@pytest.fixture(scope="module")
def built_image(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """``deploy/build_image.py --output DIR/strata-image.oci.tar``: its JSON report."""
    if os.geteuid() != 0:
        missing("make image needs root (debootstrap, the RUN jail)", "run the tests as root")
    for name in ("debootstrap", "skopeo", "podman", "umoci", "busybox"):
        require_tool(name)
    out = tmp_path_factory.mktemp("make-image") / "strata-image.oci.tar"
    started = time.monotonic()
    proc = subprocess.run([sys.executable, str(SCRIPT), "--output", str(out)],
                          capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"build_image.py failed:\n{proc.stdout}\n{proc.stderr}"
    report: dict[str, object] = json.loads(proc.stdout)
    report["archive"] = out
    report["elapsed"] = time.monotonic() - started
    print(f"make image took {report['elapsed']:.0f} s: {report['seconds']}")
    return report


@pytest.fixture
def podman_env(tmp_path: Path) -> Iterator[tuple[Containers, int, str]]:
    """Private podman/skopeo configuration for the containerized registry on a free port."""
    port = free_port()
    password = secrets.token_urlsafe(18)
    env = Containers(tmp_path / "containers", f"127.0.0.1:{port}", ("admin", password))
    try:
        yield env, port, password
    finally:
        env.cleanup()


def test_archive_holds_the_built_image(built_image: dict[str, object]) -> None:
    """The OCI archive's index names the manifest strata build pushed (skopeo kept it as is)."""
    archive = built_image["archive"]
    assert isinstance(archive, Path)
    with tarfile.open(archive) as tf:
        index_file = tf.extractfile("index.json")
        assert index_file is not None
        index = json.load(index_file)
    (manifest,) = index["manifests"]
    assert manifest["digest"] == built_image["digest"]
    assert manifest["annotations"]["org.opencontainers.image.ref.name"].startswith(
        "strata/strata:")
    assert str(built_image["nvr"]).startswith("strata-0.1.0-1.deb12")


def test_runs_under_podman(built_image: dict[str, object], tmp_path: Path,
                           podman_env: tuple[Containers, int, str]) -> None:
    env, port, password = podman_env
    archive = built_image["archive"]
    loaded = env.podman("load", "-i", str(archive), timeout=600).stdout
    assert "strata/strata" in loaded, loaded
    image = next(line.split(": ", 1)[1].strip() for line in loaded.splitlines()
                 if line.startswith("Loaded image"))

    config = json.loads(env.podman("image", "inspect", image).stdout)[0]["Config"]
    assert config["User"] == "strata"
    assert config["Entrypoint"] == ["strata", "serve", "--data", "/var/lib/strata",
                                    "--listen", "0.0.0.0:5000"]
    assert "5000/tcp" in config["ExposedPorts"]
    assert "/var/lib/strata" in config["Volumes"]
    labels = config["Labels"]
    for key in ("name", "version", "release", "summary", "maintainer", "usage"):
        assert labels.get(key), (key, labels)
    assert labels["name"] == "strata/strata"

    # The documented run: published port, a named volume, nofile and nproc within the host's
    # hard limits (an explicit --ulimit replaces containers.conf's default_ulimits: give both),
    # --public-url (the token realm clients are sent to) after the image name.
    ulimits = [arg for u in default_ulimits() for arg in ("--ulimit", u)]
    name = f"strata-image-{secrets.token_hex(4)}"
    url = f"http://127.0.0.1:{port}"
    env.podman("run", "-d", "--name", name, "--network", "bridge",
               "-p", f"127.0.0.1:{port}:5000", "-v", f"{name}-data:/var/lib/strata",
               *ulimits, "-e", f"STRATA_ADMIN_PASSWORD={password}", image,
               "--public-url", url)
    try:
        wait_healthy(url, name, env)
        assert http_status(f"{url}/v2/") == 401  # token auth on: anonymous /v2/ is challenged
        user = env.podman("exec", name, "id", "-u").stdout.strip()
        assert user == "999"  # non-root in the container

        # skopeo pushes into and pulls out of the containerized strata.
        layout = build_busybox_layout(tmp_path / "busybox", tag="v1",
                                      message="hello from the strata image")
        ref = f"docker://127.0.0.1:{port}/ops/busybox:1"
        env.skopeo("copy", layout.ref, ref)
        inspected = json.loads(env.skopeo("inspect", "--raw", ref).stdout)
        assert inspected["config"]["digest"] == layout.config_digest
        pulled = tmp_path / "pulled"
        env.skopeo("copy", ref, f"oci:{pulled}:v1")
        index = json.loads((pulled / "index.json").read_text())
        assert index["manifests"][0]["digest"] == layout.manifest_digest

        # The data dir is the volume: after a restart the image is still there.
        env.podman("stop", "--time", "20", name, timeout=120)
        env.podman("start", name)
        wait_healthy(url, name, env)
        again = json.loads(env.skopeo("inspect", "--raw", ref).stdout)
        assert again == inspected
    finally:
        env.podman("rm", "--force", "--time", "5", name, check=False, timeout=120)
        env.podman("volume", "rm", "--force", f"{name}-data", check=False)


def test_base_without_a_mirror_uses_the_cached_rootfs(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """Offline: debootstrap cannot reach the mirror (a closed loopback port), so the newest
    cached rootfs is used even when it is older than the reuse age; with none cached the
    error names debootstrap; no half-made rootfs is left in the cache."""
    if os.geteuid() != 0:
        missing("debootstrap needs root", "run the tests as root")
    require_tool("debootstrap")
    bi = build_image_module()
    mirror = f"http://127.0.0.1:{free_port()}/debian"
    empty = tmp_path / "empty"
    with pytest.raises(bi.ImageBuildError, match="debootstrap"):
        bi.base_rootfs(empty, mirror=mirror)
    assert [p.name for p in empty.iterdir()] == [".build.lock"]

    cache = tmp_path / "cache"
    cache.mkdir()
    older = cache / "bookworm-python3-2000-01-01.tar"
    oldest = cache / "bookworm-python3-1999-01-01.tar"
    for path in (older, oldest):
        with tarfile.open(path, "w"):
            pass
    assert bi.base_rootfs(cache, mirror=mirror) == older
    assert "debootstrap failed" in capsys.readouterr().err
    assert sorted(p.name for p in cache.iterdir()) == sorted(
        [".build.lock", older.name, oldest.name])
