"""Fixtures of the nodes tier (issue 17): ``busybox_layout``, a busybox image layout of the
module's own (as the interop tier makes it; see ``tests/interop/conftest.py``)."""

from __future__ import annotations

import pytest

from support.clients import OciLayout, build_busybox_layout, require_tool


@pytest.fixture(scope="module")
def busybox_layout(request: pytest.FixtureRequest,
                   tmp_path_factory: pytest.TempPathFactory) -> OciLayout:
    require_tool("umoci")
    module = request.module.__name__.rpartition(".")[2]
    root = tmp_path_factory.mktemp(f"busybox-{module}")
    return build_busybox_layout(root / "layout", tag="v1", message=f"hello from nodes {module}",
                                labels={"org.example.tier": "nodes", "name": "busybox"})
