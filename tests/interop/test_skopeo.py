"""skopeo against a real ``strata serve``: copy between oci:, dir: and docker:// (OCI and Docker
schema 2, an index with --all, a large layer), inspect, list-tags, delete, the release-stream
rules of a managed repository; digests and blobs compared end to end."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from interop_checks import (
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    assert_manifest_unknown,
    get_blob,
    get_manifest,
    manifest_json,
)

from support.clients import Containers, OciLayout, build_busybox_layout, run, sha256_digest
from support.server import StrataServer, strata_command

pytestmark = pytest.mark.interop

DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def push_layout(containers: Containers, layout: OciLayout, target: str,
                digestfile: Path) -> str:
    containers.skopeo("copy", "--digestfile", str(digestfile), layout.ref, target)
    return digestfile.read_text().strip()


def test_copy_layout_to_registry_and_back(containers: Containers, registry: StrataServer,
                                          busybox_layout: OciLayout, tmp_path: Path) -> None:
    repo = "skopeo/roundtrip"
    target = f"docker://{registry.host_port}/{repo}:v1"
    pushed = push_layout(containers, busybox_layout, target, tmp_path / "pushed.digest")

    # The manifest travels byte for byte: skopeo's digest == registry's == the layout's.
    assert pushed == busybox_layout.manifest_digest
    resp = get_manifest(registry, repo, "v1")
    assert resp.header("Docker-Content-Digest") == pushed
    assert resp.header("Content-Type") == OCI_MANIFEST
    assert resp.body == busybox_layout.manifest_bytes()
    get_manifest(registry, repo, pushed)
    for digest in (busybox_layout.config_digest, *busybox_layout.layer_digests):
        assert get_blob(registry, repo, digest) == busybox_layout.blob(digest)

    info = json.loads(containers.skopeo("inspect", target).stdout)
    assert info["Digest"] == pushed
    assert info["Labels"] == {"org.example.tier": "interop", "name": "busybox"}
    assert info["RepoTags"] == ["v1"]
    assert info["Layers"] == list(busybox_layout.layer_digests)
    assert (info["Os"], info["Architecture"]) == ("linux", "amd64")
    raw = containers.skopeo("inspect", "--raw", target).stdout
    assert raw.encode() == busybox_layout.manifest_bytes()
    config = json.loads(containers.skopeo("inspect", "--config", "--raw", target).stdout)
    assert config["config"]["Labels"]["name"] == "busybox"

    # docker:// -> oci: gives the same manifest and blobs back.
    back = tmp_path / "back"
    containers.skopeo("copy", "--digestfile", str(tmp_path / "back.digest"), target,
                      f"oci:{back}:v1")
    assert (tmp_path / "back.digest").read_text().strip() == pushed
    index = json.loads((back / "index.json").read_text())
    assert [m["digest"] for m in index["manifests"]] == [pushed]
    for digest in (pushed, busybox_layout.config_digest, *busybox_layout.layer_digests):
        encoded = digest.split(":", 1)[1]
        assert (back / "blobs" / "sha256" / encoded).read_bytes() == busybox_layout.blob(digest)

    # docker:// -> dir: keeps the raw manifest and names blobs by digest.
    plain = tmp_path / "dir"
    containers.skopeo("copy", target, f"dir:{plain}")
    assert (plain / "manifest.json").read_bytes() == busybox_layout.manifest_bytes()
    for digest in (busybox_layout.config_digest, *busybox_layout.layer_digests):
        encoded = digest.split(":", 1)[1]
        assert (plain / encoded).read_bytes() == busybox_layout.blob(digest)


def test_copy_between_repositories_docker_v2s2_and_oci(
        containers: Containers, registry: StrataServer, busybox_layout: OciLayout,
        tmp_path: Path) -> None:
    host = registry.host_port
    source = f"docker://{host}/skopeo/formats-src:v1"
    push_layout(containers, busybox_layout, source, tmp_path / "src.digest")

    # OCI -> Docker schema 2 (a converted manifest, same layer bytes, mounted across repos).
    v2s2 = f"docker://{host}/skopeo/formats-v2s2:v1"
    containers.skopeo("copy", "--format", "v2s2", "--digestfile", str(tmp_path / "v2s2"),
                      source, v2s2)
    resp = get_manifest(registry, "skopeo/formats-v2s2", "v1")
    assert resp.header("Content-Type") == DOCKER_MANIFEST
    assert resp.header("Docker-Content-Digest") == (tmp_path / "v2s2").read_text().strip()
    doc = json.loads(resp.body)
    assert doc["mediaType"] == DOCKER_MANIFEST
    assert doc["config"]["mediaType"] == DOCKER_CONFIG
    assert [layer["mediaType"] for layer in doc["layers"]] == [DOCKER_LAYER]
    assert [layer["digest"] for layer in doc["layers"]] == list(busybox_layout.layer_digests)
    for layer in doc["layers"]:
        assert get_blob(registry, "skopeo/formats-v2s2", layer["digest"]) == \
            busybox_layout.blob(layer["digest"])
    info = json.loads(containers.skopeo("inspect", v2s2).stdout)
    assert info["Digest"] == resp.header("Docker-Content-Digest")
    assert info["Labels"]["org.example.tier"] == "interop"
    raw = containers.skopeo("inspect", "--raw", v2s2).stdout.encode()
    assert sha256_digest(raw) == info["Digest"]

    # Docker schema 2 -> OCI again.
    oci = f"docker://{host}/skopeo/formats-oci:v1"
    containers.skopeo("copy", "--format", "oci", "--digestfile", str(tmp_path / "oci"),
                      v2s2, oci)
    doc = manifest_json(registry, "skopeo/formats-oci", "v1")
    assert doc["mediaType"] == OCI_MANIFEST
    assert [layer["digest"] for layer in doc["layers"]] == list(busybox_layout.layer_digests)
    digest = get_manifest(registry, "skopeo/formats-oci", "v1").header("Docker-Content-Digest")
    assert digest == (tmp_path / "oci").read_text().strip()

    # And the Docker-format image pulls back into a layout that still has the same layers.
    back = tmp_path / "back"
    containers.skopeo("copy", v2s2, f"oci:{back}:v1")
    for digest in busybox_layout.layer_digests:
        assert (back / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes() == \
            busybox_layout.blob(digest)


def test_list_tags(containers: Containers, registry: StrataServer,
                   busybox_layout: OciLayout) -> None:
    repo = f"{registry.host_port}/skopeo/tags"
    tags = ["v1", "1.0", "latest", "1.0-1.f25docker"]
    containers.skopeo("copy", busybox_layout.ref, f"docker://{repo}:{tags[0]}")
    for tag in tags[1:]:
        containers.skopeo("copy", f"docker://{repo}:{tags[0]}", f"docker://{repo}:{tag}")
    listed = json.loads(containers.skopeo("list-tags", f"docker://{repo}").stdout)
    assert listed["Repository"] == repo
    assert sorted(listed["Tags"]) == sorted(tags)
    resp = registry.request("GET", "/v2/skopeo/tags/tags/list", headers=registry.admin_headers)
    assert sorted(json.loads(resp.body)["tags"]) == sorted(tags)


def test_delete(containers: Containers, registry: StrataServer,
                busybox_layout: OciLayout, tmp_path: Path) -> None:
    repo = "skopeo/delete"
    keep = f"docker://{registry.host_port}/skopeo/delete-keep:v1"
    target = f"docker://{registry.host_port}/{repo}:v1"
    push_layout(containers, busybox_layout, keep, tmp_path / "keep")
    digest = push_layout(containers, busybox_layout, target, tmp_path / "d")
    get_manifest(registry, repo, "v1")

    containers.skopeo("delete", target)

    gone = containers.skopeo("inspect", target, check=False)
    assert gone.returncode != 0
    assert "manifest unknown" in gone.stderr
    assert_manifest_unknown(registry, repo, "v1")
    assert_manifest_unknown(registry, repo, digest)
    listed = json.loads(containers.skopeo(
        "list-tags", f"docker://{registry.host_port}/{repo}").stdout)
    assert listed["Tags"] in ([], None)
    # The same manifest in another repository is untouched.
    assert json.loads(containers.skopeo("inspect", keep).stdout)["Digest"] == digest


def test_copy_all_of_an_index(containers: Containers, registry: StrataServer,
                              busybox_layout: OciLayout, tmp_path: Path) -> None:
    host = registry.host_port
    image = push_layout(containers, busybox_layout, f"docker://{host}/skopeo/index:img",
                        tmp_path / "img")
    index = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": image,
                       "size": len(busybox_layout.manifest_bytes()),
                       "platform": {"architecture": "amd64", "os": "linux"}}],
    }).encode()
    resp = registry.request("PUT", "/v2/skopeo/index/manifests/multi", body=index,
                            headers={"Content-Type": OCI_INDEX, **registry.admin_headers})
    assert resp.status == 201, resp.body
    source = f"docker://{host}/skopeo/index:multi"
    # inspect reports the index's digest (and the platform image's config).
    assert json.loads(containers.skopeo("inspect", source).stdout)["Digest"] == \
        sha256_digest(index)
    containers.skopeo("copy", "--all", source, f"docker://{host}/skopeo/index-copy:multi")
    copied = get_manifest(registry, "skopeo/index-copy", "multi")
    assert json.loads(copied.body) == json.loads(index)  # skopeo re-serializes lists
    assert copied.header("Content-Type") == OCI_INDEX
    get_manifest(registry, "skopeo/index-copy", image)
    layout = tmp_path / "layout"
    containers.skopeo("copy", "--all", source, f"oci:{layout}:multi")
    top = json.loads((layout / "index.json").read_text())["manifests"]
    assert [m["digest"] for m in top] == [sha256_digest(index)]


def test_large_layer_roundtrip(containers: Containers, registry: StrataServer,
                               tmp_path: Path) -> None:
    """A 24 MiB layer (incompressible) up and down again, streamed through both workers."""
    big = os.urandom(24 << 20)
    layout = build_busybox_layout(tmp_path / "layout", tag="big", message="big",
                                  files={"/data/big.bin": big})
    target = f"docker://{registry.host_port}/skopeo/large:v1"
    pushed = push_layout(containers, layout, target, tmp_path / "digest")
    assert pushed == layout.manifest_digest
    (layer,) = layout.layer_digests
    head = registry.request("HEAD", f"/v2/skopeo/large/blobs/{layer}",
                            headers=registry.admin_headers)
    assert head.status == 200
    assert int(head.header("Content-Length") or 0) == len(layout.blob(layer)) > len(big)
    plain = tmp_path / "dir"
    containers.skopeo("copy", target, f"dir:{plain}")
    assert (plain / layer.split(":", 1)[1]).read_bytes() == layout.blob(layer)
    assert (plain / "manifest.json").read_bytes() == layout.manifest_bytes()



def test_managed_repository_stream_rules(containers: Containers, registry: StrataServer,
                                         tmp_path: Path) -> None:
    """In a release-managed repository the release rules hold for skopeo too (as admin), with
    readable errors: no stream tag is written through /v2/ (issue 11), a build goes in by
    digest and out through a release, and a pending build cannot be deleted until withdrawn."""
    env = {**os.environ, "STRATA_URL": registry.url, "STRATA_USER": registry.admin_user,
           "STRATA_PASSWORD": registry.admin_password}
    for args in (["namespace", "add", "skopeo", "--dist-tag", "f99skopeo"],
                 ["image", "add", "skopeo/managed"]):
        run([*strata_command(), *args], env=env)
    host = registry.host_port
    build = build_busybox_layout(tmp_path / "build", tag="v1", labels={
        "name": "managed", "version": "130", "release": "1.f99skopeo"})
    nvr = f"docker://{host}/skopeo/managed:130-1.f99skopeo"
    for target in (nvr, f"docker://{host}/skopeo/managed:latest",
                   f"docker://{host}/skopeo/unregistered:130-1.f99skopeo"):
        refused = containers.skopeo("copy", build.ref, target, check=False)
        assert refused.returncode != 0
        assert "denied" in refused.stderr and "stream-tags-release-only" in refused.stderr, \
            refused.stderr
        assert "strata candidate add skopeo/" in refused.stderr, refused.stderr

    candidate = f"docker://{host}/skopeo/managed@{build.manifest_digest}"
    containers.skopeo("copy", build.ref, candidate)
    run([*strata_command(), "candidate", "add", f"skopeo/managed@{build.manifest_digest}"],
        env=env)
    pending = containers.skopeo("delete", candidate, check=False)
    assert pending.returncode != 0
    assert "build-protected" in pending.stderr and "withdraw" in pending.stderr, pending.stderr
    run([*strata_command(), "release", "publish", "--namespace", "skopeo"], env=env)
    assert get_manifest(registry, "skopeo/managed", "130-1.f99skopeo").body == \
        build.manifest_bytes()
    deleted = containers.skopeo("delete", nvr, check=False)
    assert deleted.returncode != 0
    assert "never deleted" in deleted.stderr, deleted.stderr
    tags = json.loads(containers.skopeo("list-tags", f"docker://{host}/skopeo/managed").stdout)
    # the stream tags, and the release's signature of the build (issue 16)
    assert sorted(t for t in tags["Tags"] if not t.endswith(".sig")) == [
        "130", "130-1.f99skopeo", "latest"]
    assert "sha256-" + build.manifest_digest.split(":")[1] + ".sig" in tags["Tags"]
