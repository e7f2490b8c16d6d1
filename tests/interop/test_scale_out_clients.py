"""skopeo against two ``strata serve`` nodes sharing PostgreSQL and an S3-compatible bucket:
what is pushed through one node is inspected and pulled, byte for byte, through the other."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from support.clients import Containers, OciLayout
from support.server import StrataServer

pytestmark = pytest.mark.interop

def test_push_through_one_node_pull_through_the_other(
        scale_out_nodes: tuple[StrataServer, StrataServer], busybox_layout: OciLayout,
        tmp_path: Path) -> None:
    a, b = scale_out_nodes
    containers = Containers(tmp_path / "containers", a.host_port)
    try:
        pushed = tmp_path / "pushed.digest"
        containers.skopeo("copy", "--dest-tls-verify=false", "--digestfile", str(pushed),
                          busybox_layout.ref, f"docker://{a.host_port}/scale/busybox:v1")
        digest = pushed.read_text().strip()
        assert digest == busybox_layout.manifest_digest

        info = json.loads(containers.skopeo(
            "inspect", "--tls-verify=false", f"docker://{b.host_port}/scale/busybox:v1").stdout)
        assert info["Digest"] == digest
        assert info["Layers"] == list(busybox_layout.layer_digests)

        out = tmp_path / "pulled"
        containers.skopeo("copy", "--src-tls-verify=false",
                          f"docker://{b.host_port}/scale/busybox@{digest}", f"dir:{out}")
        assert (out / "manifest.json").read_bytes() == busybox_layout.manifest_bytes()
        for blob in (busybox_layout.config_digest, *busybox_layout.layer_digests):
            assert (out / blob.split(":", 1)[1]).read_bytes() == busybox_layout.blob(blob)
    finally:
        containers.cleanup()
