"""A strata-built image under real clients: ``podman run`` runs it, ``skopeo inspect`` reads
its labels, and ``podman`` sees the same digest strata printed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from build_support import BASE, DIST_TAG, NAMESPACE, Strata, labels_block, write_context

from support.clients import Containers, require_tool

pytestmark = pytest.mark.interop

CONTAINERFILE = f"""
    FROM {BASE}:1.36 AS build
    RUN mkdir -p /out && echo "hello from a strata build" > /out/message
    FROM {BASE}:1.36
    {labels_block("interop")}
    COPY --from=build /out/message /etc/message
    COPY greet.sh /usr/local/bin/greet
    RUN chmod 755 /usr/local/bin/greet && rm /bin/ls
    USER app
    WORKDIR /home/app
    CMD ["/usr/local/bin/greet"]
"""


@pytest.fixture
def podman_env(tmp_path: Path, strata: Strata) -> Iterator[Containers]:
    server = strata.server
    env = Containers(tmp_path / "containers", server.host_port,
                     (server.admin_user, server.admin_password))
    yield env
    env.cleanup()


@pytest.fixture(scope="module")
def built(strata: Strata, base_image: dict[str, Any],
          tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    ctx = write_context(tmp_path_factory.mktemp("interop"), CONTAINERFILE, {
        "greet.sh": '#!/bin/sh\necho "$(cat /etc/message) as $(id -un) in $(pwd)"\n'
                    "test -e /bin/ls && echo unexpected-ls || echo no-ls\n",
        "help.md": "# interop\n"})
    return strata.build(ctx)


def test_podman_runs_the_image(built: dict[str, Any], podman_env: Containers) -> None:
    require_tool("runc")
    ref = built["reference"]
    podman_env.podman("pull", "--tls-verify=false", ref)
    out = podman_env.podman("run", "--rm", ref).stdout.splitlines()
    assert out == ["hello from a strata build as app in /home/app", "no-ls"]
    inspected = json.loads(podman_env.podman("image", "inspect", ref).stdout)[0]
    assert inspected["Digest"] == built["digest"]
    assert inspected["Labels"]["release"] == f"1.{DIST_TAG}"
    out = podman_env.podman("run", "--rm", ref, "cat", "/help.md").stdout
    assert out.strip() == "# interop"


def test_skopeo_inspects_the_labels(built: dict[str, Any], podman_env: Containers,
                                    strata: Strata) -> None:
    server = strata.server
    out = podman_env.skopeo("inspect", "--creds", server.admin_creds,
                            f"docker://{built['reference']}").stdout
    data = json.loads(out)
    assert data["Digest"] == built["digest"]
    assert data["Labels"] == {
        "name": f"{NAMESPACE}/interop", "version": "1", "release": f"1.{DIST_TAG}",
        "summary": "test image interop", "maintainer": "Build Tests <bt@example.com>",
        "usage": "podman run interop"}
    assert len(data["Layers"]) == 5  # base, COPY --from, COPY, RUN, help.md
