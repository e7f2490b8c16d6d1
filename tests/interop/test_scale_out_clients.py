"""skopeo against two ``strata serve`` nodes sharing PostgreSQL and an S3-compatible bucket:
what is pushed through one node is inspected and pulled, byte for byte, through the other."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.clients import Containers, OciLayout
from support.postgres import PostgresCluster
from support.s3 import RcloneS3
from support.server import StrataServer

pytestmark = pytest.mark.interop

_names = itertools.count()


@pytest.fixture
def nodes(tmp_path: Path, postgres: PostgresCluster, s3_server: RcloneS3
          ) -> Iterator[tuple[StrataServer, StrataServer]]:
    n = next(_names)
    args = ["--workers", "1", "--no-auth", "--gc-interval", "0",
            "--database-url", postgres.create_database(f"interop_scale_{n}"),
            "--blob-store", s3_server.url(f"interop{n}/")]
    env = {"AWS_ACCESS_KEY_ID": s3_server.access_key,
           "AWS_SECRET_ACCESS_KEY": s3_server.secret_key}
    started = [StrataServer(tmp_path / f"node{i}", *args, env=env).start() for i in range(2)]
    try:
        yield started[0], started[1]
    finally:
        for node in started:
            node.stop()


def test_push_through_one_node_pull_through_the_other(
        nodes: tuple[StrataServer, StrataServer], busybox_layout: OciLayout,
        tmp_path: Path) -> None:
    a, b = nodes
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
