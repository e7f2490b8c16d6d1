"""Interop tier fixtures: one server for the session, one busybox layout, per-test client config.

Every test names its own repositories (``<module>/<test>``) so they can share the server.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.clients import Containers, OciLayout, build_busybox_layout, require_tool
from support.server import StrataServer

BUSYBOX_MESSAGE = "hello from strata interop"


@pytest.fixture(scope="session")
def registry(shared_strata_server: StrataServer) -> StrataServer:
    return shared_strata_server


@pytest.fixture(scope="module")
def busybox_layout(request: pytest.FixtureRequest,
                   tmp_path_factory: pytest.TempPathFactory) -> OciLayout:
    """A busybox image layout of the module's own (tests must only read it).

    One per module, not per session: podman and buildah push recompressed copies of a layout's
    layer, and the clients' shared blob-info cache (root's ``/var/lib/containers/cache``, which
    skopeo 1.9 and podman 4.3 offer no option to move) then lets skopeo substitute those for the
    layout's own layer. Distinct
    content per module keeps each module's digests its own.
    """
    require_tool("umoci")
    module = request.module.__name__.rpartition(".")[2]
    root = tmp_path_factory.mktemp(f"busybox-{module}")
    return build_busybox_layout(root / "layout", tag="v1", message=f"{BUSYBOX_MESSAGE} {module}",
                                labels={"org.example.tier": "interop", "name": "busybox"})


@pytest.fixture
def containers(tmp_path: Path, registry: StrataServer) -> Iterator[Containers]:
    """Client configuration logged in as the registry's admin (may push anywhere)."""
    env = Containers(tmp_path / "containers", registry.host_port,
                     (registry.admin_user, registry.admin_password))
    yield env
    env.cleanup()
