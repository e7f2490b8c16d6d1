"""``podman search`` and ``strata search`` against a real ``strata serve`` (issue 15): podman's
v1 search (``GET /v1/search``) lists strata's matches with their descriptions, name matches
first; ``podman search --list-tags`` lists a found repository's tags; the CLI finds images by
words and builds by package."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.clients import Containers, OciLayout
from support.server import StrataServer, strata_command

pytestmark = pytest.mark.interop

NS = "srch"


def api(registry: StrataServer, method: str, path: str, body: dict[str, Any]) -> Any:
    resp = registry.request(method, path, body=json.dumps(body).encode(), headers={
        **registry.admin_headers, "Content-Type": "application/json"})
    assert resp.status in (200, 201), resp.body[:500]
    return json.loads(resp.body)


@pytest.fixture(scope="module")
def catalog(registry: StrataServer, busybox_layout: OciLayout,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``srch/busybox:v1`` pushed by podman, then registered with a summary, beside two more
    images of the namespace; answers the registry's host:port."""
    host = registry.host_port
    env = Containers(tmp_path_factory.mktemp("push"), host,
                     (registry.admin_user, registry.admin_password))
    try:
        image_id = env.podman("pull", busybox_layout.ref).stdout.split()[-1]
        env.podman("push", image_id, f"docker://{host}/{NS}/busybox:v1")
    finally:
        env.cleanup()
    api(registry, "POST", "/api/v1/namespaces", {"name": NS, "dist_tag": f"{NS}docker"})
    for name, summary in (("busybox", "Tiny shell toolbox for searching"),
                          ("busybox-extras", "More busybox applets"),
                          ("httpd", "Web server, not a busybox")):
        api(registry, "POST", "/api/v1/images", {"repository": f"{NS}/{name}",
                                                 "summary": summary})
    yield host


@pytest.fixture
def anonymous(tmp_path: Path, registry: StrataServer) -> Iterator[Containers]:
    env = Containers(tmp_path / "anonymous", registry.host_port)
    yield env
    env.cleanup()


def test_podman_search_lists_matches_with_descriptions(catalog: str,
                                                       anonymous: Containers) -> None:
    out = anonymous.podman("search", "--no-trunc", "--format", "{{.Name}}|{{.Description}}",
                           f"{catalog}/busybox").stdout
    assert out.splitlines() == [
        f"{catalog}/{NS}/busybox|Tiny shell toolbox for searching",
        f"{catalog}/{NS}/busybox-extras|More busybox applets",
        f"{catalog}/{NS}/httpd|Web server, not a busybox"]
    out = anonymous.podman("search", "--no-trunc", "--format", "{{.Name}}",
                           f"{catalog}/web server").stdout
    assert out.split() == [f"{catalog}/{NS}/httpd"]
    out = anonymous.podman("search", "--limit", "1", "--format", "{{.Name}}",
                           f"{catalog}/busybox").stdout
    assert out.split() == [f"{catalog}/{NS}/busybox"]


def test_podman_search_list_tags(catalog: str, anonymous: Containers) -> None:
    out = anonymous.podman("search", "--list-tags", f"{catalog}/{NS}/busybox").stdout
    assert [line.split() for line in out.splitlines()] == [
        ["NAME", "TAG"], [f"{catalog}/{NS}/busybox", "v1"]]


def strata(registry: StrataServer, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "STRATA_URL": registry.url}
    env.pop("STRATA_USER", None)
    return subprocess.run([*strata_command(), "search", *args], capture_output=True, text=True,
                          env=env, timeout=120, check=False)


def test_strata_search_cli(catalog: str, registry: StrataServer) -> None:
    proc = strata(registry, "busybox", "--namespace", NS)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert [line.split()[0] for line in lines] == [f"{NS}/busybox", f"{NS}/busybox-extras",
                                                   f"{NS}/httpd"]
    assert lines[0].split(None, 3)[1:] == ["active", "-", "Tiny shell toolbox for searching"]
    proc = strata(registry, "busybox", "--limit", "2", "--json")
    assert [r["repository"] for r in json.loads(proc.stdout)["results"]] == [
        f"{NS}/busybox", f"{NS}/busybox-extras"]
    # builds by package: none recorded for these images
    proc = strata(registry, "--package", "openssl=3.0.8", "--namespace", NS)
    assert (proc.returncode, proc.stdout.strip()) == (0, "no builds contain that package")
    # bad input: a clear message, exit 1
    proc = strata(registry)
    assert proc.returncode != 0 and "give a TERM" in proc.stderr
    proc = strata(registry, "x" * 300)
    assert proc.returncode == 1 and "longer than 256" in proc.stderr
