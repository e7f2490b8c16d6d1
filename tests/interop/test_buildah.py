"""buildah against a real ``strata serve``: build on the busybox layout (run, copy, config),
commit, push; build from scratch in Docker format; check with skopeo, HTTP and podman."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from interop_checks import DOCKER_MANIFEST, OCI_MANIFEST, get_blob, get_manifest

from support.clients import Containers, OciLayout, require_tool
from support.server import StrataServer

pytestmark = pytest.mark.interop


@pytest.fixture
def anonymous(tmp_path: Path, registry: StrataServer) -> Iterator[Containers]:
    """An empty storage without credentials: pulls as anonymous."""
    env = Containers(tmp_path / "anonymous", registry.host_port)
    yield env
    env.cleanup()


def test_build_on_layout_push_and_run(containers: Containers, anonymous: Containers,
                                      registry: StrataServer, busybox_layout: OciLayout,
                                      tmp_path: Path) -> None:
    require_tool("runc")
    host = registry.host_port
    (tmp_path / "motd").write_text("copied by buildah\n")
    ctr = containers.buildah("from", busybox_layout.ref).stdout.strip()
    containers.buildah("run", ctr, "--", "sh", "-c", "echo built by buildah run > /built.txt")
    containers.buildah("copy", ctr, str(tmp_path / "motd"), "/etc/motd")
    containers.buildah("config", "--label", "built-by=buildah", "--cmd",
                       '["/bin/sh", "-c", "cat /built.txt /etc/motd"]', ctr)
    containers.buildah("commit", ctr, "buildah-app:v1")
    target = f"{host}/buildah/app:v1"
    containers.buildah("push", "--tls-verify=false", "--digestfile", str(tmp_path / "digest"),
                       "buildah-app:v1", f"docker://{target}")
    pushed = (tmp_path / "digest").read_text().strip()

    resp = get_manifest(registry, "buildah/app", "v1")
    assert resp.header("Docker-Content-Digest") == pushed
    assert resp.header("Content-Type") == OCI_MANIFEST
    doc = json.loads(resp.body)
    assert len(doc["layers"]) == 2
    for blob in (doc["config"], *doc["layers"]):
        assert len(get_blob(registry, "buildah/app", blob["digest"])) == blob["size"]

    info = json.loads(containers.skopeo("inspect", f"docker://{target}").stdout)
    assert info["Digest"] == pushed
    assert info["Labels"]["built-by"] == "buildah"
    assert info["Labels"]["name"] == "busybox"  # inherited from the base layout
    assert info["Layers"] == [layer["digest"] for layer in doc["layers"]]

    anonymous.podman("pull", target)
    out = anonymous.podman("run", "--rm", target).stdout
    assert out.splitlines() == ["built by buildah run", "copied by buildah"]


def test_scratch_image_in_docker_format(containers: Containers, registry: StrataServer,
                                        tmp_path: Path) -> None:
    host = registry.host_port
    payload = b"strata interop payload\n" * 100
    (tmp_path / "payload.txt").write_bytes(payload)
    ctr = containers.buildah("from", "scratch").stdout.strip()
    containers.buildah("copy", ctr, str(tmp_path / "payload.txt"), "/data/payload.txt")
    containers.buildah("config", "--label", "kind=scratch", ctr)
    containers.buildah("commit", "--format", "docker", ctr, "buildah-scratch:v1")
    target = f"docker://{host}/buildah/scratch:v1"
    containers.buildah("push", "--tls-verify=false", "buildah-scratch:v1", target)

    raw = containers.skopeo("inspect", "--raw", target).stdout.encode()
    resp = get_manifest(registry, "buildah/scratch", "v1")
    assert resp.body == raw
    assert resp.header("Content-Type") == DOCKER_MANIFEST
    doc = json.loads(raw)
    assert doc["mediaType"] == DOCKER_MANIFEST
    (layer,) = doc["layers"]
    data = get_blob(registry, "buildah/scratch", layer["digest"])
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data))) as tar:
        member = tar.extractfile("data/payload.txt")
        assert member is not None
        assert member.read() == payload
    info = json.loads(containers.skopeo("inspect", target).stdout)
    assert info["Labels"]["kind"] == "scratch"
