"""podman against a real ``strata serve``: push a local image (OCI, Docker schema 2),
pull it into fresh storage, run it; push a manifest list and run from it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from interop_checks import DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, get_blob, get_manifest

from support.clients import Containers, OciLayout, require_tool
from support.server import StrataServer

pytestmark = pytest.mark.interop


@pytest.fixture
def fresh(tmp_path: Path, registry: StrataServer) -> Iterator[Containers]:
    """A second, empty storage without credentials (the "other machine", pulling anonymously)."""
    env = Containers(tmp_path / "fresh", registry.host_port)
    yield env
    env.cleanup()


def pull_local(env: Containers, layout: OciLayout) -> str:
    """``podman pull oci:LAYOUT:TAG``; returns the image ID."""
    return env.podman("pull", layout.ref).stdout.split()[-1]


def pull_and_run(env: Containers, image: str, expected: str) -> None:
    require_tool("runc")
    env.podman("pull", image)
    out = env.podman("run", "--rm", image).stdout
    assert out.strip() == expected
    out = env.podman("run", "--rm", image, "sh", "-c", "echo $((6 * 7)) from $0").stdout
    assert out.strip() == "42 from sh"


def test_push_pull_run(containers: Containers, fresh: Containers, registry: StrataServer,
                       busybox_layout: OciLayout, tmp_path: Path) -> None:
    host = registry.host_port
    image_id = pull_local(containers, busybox_layout)
    local = f"{host}/podman/busybox:v1"
    containers.podman("tag", image_id, local)
    containers.podman("push", "--digestfile", str(tmp_path / "oci.digest"), local)

    pushed = (tmp_path / "oci.digest").read_text().strip()
    resp = get_manifest(registry, "podman/busybox", "v1")
    assert resp.header("Docker-Content-Digest") == pushed
    doc = json.loads(resp.body)
    assert resp.header("Content-Type") == OCI_MANIFEST
    assert doc.get("mediaType", OCI_MANIFEST) == OCI_MANIFEST  # optional in OCI manifests
    for blob in (doc["config"], *doc["layers"]):
        assert len(get_blob(registry, "podman/busybox", blob["digest"])) == blob["size"]

    pull_and_run(fresh, local, busybox_layout.message)
    inspected = json.loads(fresh.podman("image", "inspect", local).stdout)[0]
    assert inspected["Digest"] == pushed
    assert inspected["Labels"]["name"] == "busybox"


def test_push_docker_v2s2(containers: Containers, fresh: Containers, registry: StrataServer,
                          busybox_layout: OciLayout, tmp_path: Path) -> None:
    host = registry.host_port
    image_id = pull_local(containers, busybox_layout)

    v2s2 = f"{host}/podman/formats:v2s2"
    containers.podman("push", "--format", "v2s2", "--digestfile", str(tmp_path / "v2s2"),
                      image_id, f"docker://{v2s2}")
    resp = get_manifest(registry, "podman/formats", "v2s2")
    assert resp.header("Content-Type") == DOCKER_MANIFEST
    assert resp.header("Docker-Content-Digest") == (tmp_path / "v2s2").read_text().strip()
    assert json.loads(resp.body)["mediaType"] == DOCKER_MANIFEST
    pull_and_run(fresh, v2s2, busybox_layout.message)


def test_manifest_list_push_and_run(containers: Containers, fresh: Containers,
                                    registry: StrataServer, busybox_layout: OciLayout) -> None:
    host = registry.host_port
    containers.skopeo("copy", busybox_layout.ref, f"docker://{host}/podman/list-parts:amd64")
    containers.podman("manifest", "create", "busybox-list")
    containers.podman("manifest", "add", "busybox-list",
                      f"docker://{host}/podman/list-parts:amd64")
    target = f"{host}/podman/list:v1"
    containers.podman("manifest", "push", "--all", "busybox-list", f"docker://{target}")

    resp = get_manifest(registry, "podman/list", "v1")
    index = json.loads(resp.body)
    assert resp.header("Content-Type") == index.get("mediaType", OCI_INDEX) == OCI_INDEX
    (child,) = index["manifests"]
    assert child["platform"] == {"architecture": "amd64", "os": "linux"}
    # podman re-pushes the image from its storage (layers recompressed): the config, which
    # names the uncompressed layers, is what stays the same.
    image = json.loads(get_manifest(registry, "podman/list", child["digest"]).body)
    assert image["config"]["digest"] == busybox_layout.config_digest
    for blob in (image["config"], *image["layers"]):
        assert len(get_blob(registry, "podman/list", blob["digest"])) == blob["size"]

    pull_and_run(fresh, target, busybox_layout.message)
