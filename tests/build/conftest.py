"""Fixtures of the build tier: a server of our own with a namespace and an imported base.

Builds run RUN steps in a jail (user namespace, idmapped overlay): the tier needs root, user
namespaces and overlay mounts (skipped outside CI when they are missing, like the interop clients).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from build_support import (
    BASE,
    BASE_VERSION,
    BUILT_IMAGES,
    DIST_TAG,
    NAMESPACE,
    Strata,
    make_rootfs,
    sandbox_available,
)

from support.server import StrataServer


@pytest.fixture(scope="session")
def build_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StrataServer]:
    with StrataServer(tmp_path_factory.mktemp("build-server")) as server:
        yield server


@pytest.fixture(scope="session")
def strata(build_server: StrataServer, tmp_path_factory: pytest.TempPathFactory) -> Strata:
    sandbox_available()
    cache = tmp_path_factory.mktemp("build-cache")
    tool = Strata(build_server, {
        "STRATA_URL": build_server.url, "STRATA_USER": build_server.admin_user,
        "STRATA_PASSWORD": build_server.admin_password, "STRATA_BUILD_CACHE": str(cache)})
    result = tool("namespace", "add", NAMESPACE, "--dist-tag", DIST_TAG)
    assert result.exit_code == 0, result.output
    for name in BUILT_IMAGES:  # only approved images take candidates (issue 14)
        result = tool("image", "add", f"{NAMESPACE}/{name}", "--reason", "build tier")
        assert result.exit_code == 0, result.output
    return tool


@pytest.fixture(scope="session")
def base_image(strata: Strata, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """``busybox-bt:1.36`` imported with ``strata base import`` (a candidate) and released
    out of band, so ``FROM busybox-bt:1.36`` finds it (session-wide)."""
    tarball = make_rootfs(tmp_path_factory.mktemp("rootfs"))
    data: dict[str, Any] = strata.json("base", "import", str(tarball), "--name", BASE,
                                       "--version", BASE_VERSION, "--namespace", NAMESPACE,
                                       "--label", "summary=busybox for the build tests")
    released = strata.json("release", "oob", f"{BASE}@{data['digest']}",
                           "--advisory", "BT-BASE-1", "--reason", "the build tier's base")
    data["released_in"] = released["name"]
    return data


