"""``strata base import`` against a real ``strata serve`` (authentication on): a base is an image
of its namespace, pushed by digest and registered as a candidate; only a release gives it tags;
its stream tags are then out of reach of /v2/ writes, admin included (skopeo and raw HTTP)."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.server import StrataServer, strata_command

pytestmark = [pytest.mark.server, pytest.mark.interop]


class Cli:
    def __init__(self, server: StrataServer, cwd: Path) -> None:
        self.server = server
        self.cwd = cwd
        self.env = {**os.environ, "STRATA_URL": server.url, "STRATA_USER": server.admin_user,
                    "STRATA_PASSWORD": server.admin_password}

    def run(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([*strata_command(), *args], cwd=self.cwd, env=self.env,
                              text=True, capture_output=True, timeout=120, check=False)
        if ok:
            assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
        return proc

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "--json").stdout)


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    root = tmp_path / "tree"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "os-release").write_text("NAME=base\n")
    with tarfile.open(tmp_path / "rootfs.tar", "w") as tf:
        tf.add(root, arcname=".")
    with StrataServer(tmp_path / "server", env={"STRATA_SCHEDULER_INTERVAL": "0"}) as server:
        tool = Cli(server, tmp_path)
        tool.run("namespace", "add", "f25", "--dist-tag", "f25docker")
        yield tool


def skopeo_copy(cli: Cli, source: str, dest: str) -> subprocess.CompletedProcess[str]:
    host = cli.server.host_port
    return subprocess.run(["skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false",
                           f"--src-creds={cli.server.admin_creds}",
                           f"--dest-creds={cli.server.admin_creds}",
                           f"docker://{host}/{source}", f"docker://{host}/{dest}"],
                          capture_output=True, text=True, timeout=120, check=False)


def test_base_import_is_a_candidate_released_like_any_image(cli: Cli) -> None:
    base = cli.json("base", "import", "rootfs.tar", "--name", "f25", "--version", "25",
                    "--dist-tag", "f25docker")
    assert base["repository"] == "f25" and base["namespace"] == "f25"
    assert base["nvr"] == "f25-25-1.f25docker" and base["digest"].startswith("sha256:")
    assert base["candidate"]["status"] == "candidate"
    # no tag until a release: the import pushed by digest only
    tags = cli.run("tags", "f25", "--json", ok=False)
    assert tags.returncode != 0 or json.loads(tags.stdout)["tags"] == []
    image = cli.json("image", "show", "f25")
    assert (image["namespace"], image["name"], image["tags"]) == ("f25", "f25", [])
    [ns] = cli.json("namespace", "list")["namespaces"]
    assert ns["base_image"] == "f25"
    [waiting] = cli.json("candidate", "list", "--repository", "f25")["candidates"]
    assert waiting["digest"] == base["digest"]
    assert cli.json("history", "f25:25")["events"] == []
    plan = cli.json("release", "plan", "--namespace", "f25")
    assert [i["repository"] for i in plan["plans"][0]["images"]] == ["f25"]

    published = cli.json("release", "publish", "--namespace", "f25")
    assert [b["repository"] for b in published["builds"]] == ["f25"]
    tags = set(cli.json("tags", "f25")["tags"])
    assert {t for t in tags if not t.endswith(".sig")} == {"25-1.f25docker", "25", "latest"}
    assert "sha256-" + base["digest"].split(":")[1] + ".sig" in tags  # signed (issue 16)
    history = cli.json("history", "f25:25")
    assert [(e["new_digest"], e["release"]) for e in history["events"]] == [
        (base["digest"], published["name"])]
    at = cli.json("history", "f25:latest", "--at", str(history["events"][0]["at_epoch"]))
    assert at["digest"] == base["digest"] and at["nvr"] == "f25-25-1.f25docker"
    assert cli.json("stream", "list", "f25")["streams"][0]["version"] == "25"
    shown = cli.run("release", "show", published["name"][len("f25-"):]).stdout
    assert "f25:latest" in shown

    # a second base import: a new candidate, the tags stay until its release
    again = cli.json("base", "import", "rootfs.tar", "--name", "f25", "--version", "25",
                     "--label", "summary=rebuilt")
    assert again["nvr"] == "f25-25-2.f25docker"
    assert json.loads(cli.run("inspect", "f25:latest", "--json").stdout)["digest"] == \
        base["digest"]
    oob = cli.json("release", "oob", f"f25@{again['digest']}", "--advisory", "BASE-1",
                   "--reason", "rebuilt base")
    assert oob["namespace"] == "f25"
    rollback = cli.json("release", "rollback", "f25:latest", "--to", "25-1.f25docker",
                        "--reason", "the rebuild broke FROM")
    assert rollback["new_digest"] == base["digest"]
    assert cli.json("stream", "eol", "f25:25")["eol"] is True


def test_base_stream_tags_refuse_v2_writes_even_for_admin(cli: Cli) -> None:
    base = cli.json("base", "import", "rootfs.tar", "--name", "f25", "--version", "25")
    cli.json("release", "publish", "--namespace", "f25")
    other = cli.json("base", "import", "rootfs.tar", "--name", "fedora", "--namespace", "f25",
                     "--version", "25")
    assert other["repository"] == "fedora" and other["nvr"] == "fedora-25-1.f25docker"
    cli.json("release", "oob", f"fedora@{other['digest']}", "--advisory", "B-1", "--reason",
             "second base")
    for tag in ("25-1.f25docker", "latest", "25"):
        proc = skopeo_copy(cli, "fedora:latest", f"f25:{tag}")
        assert proc.returncode != 0 and "denied" in proc.stderr.lower(), (tag, proc.stderr)
    resp = cli.server.request("DELETE", "/v2/f25/manifests/latest",
                              headers=cli.server.admin_headers)
    assert resp.status == 403 and json.loads(resp.body)["errors"][0]["code"] == "DENIED"
    resp = cli.server.request("DELETE", f"/v2/f25/manifests/{base['digest']}",
                              headers=cli.server.admin_headers)
    assert resp.status == 403
    assert cli.json("history", "f25:latest")["events"][-1]["new_digest"] == base["digest"]
    assert json.loads(cli.run("inspect", "f25:latest", "--json").stdout)["digest"] == \
        base["digest"]
    # a base in the namespace's own path works the same way
    nested = cli.json("base", "import", "rootfs.tar", "--name", "f25/fedora", "--version", "25")
    assert (nested["repository"], nested["nvr"]) == ("f25/fedora", "fedora-25-1.f25docker")
    assert cli.json("image", "show", "f25/fedora")["namespace"] == "f25"


def test_base_import_needs_a_namespace(cli: Cli) -> None:
    proc = cli.run("base", "import", "rootfs.tar", "--name", "centos", "--version", "7",
                   "--dist-tag", "el7", ok=False)
    assert proc.returncode != 0 and "namespace" in proc.stderr
    proc = cli.run("base", "import", "rootfs.tar", "--name", "f25", "--version", "25",
                   "--dist-tag", "f26docker", "--namespace", "f25", ok=False)
    assert proc.returncode != 0 and "f25docker" in proc.stderr
    resp = cli.server.request("GET", "/v2/centos/tags/list", headers=cli.server.admin_headers)
    assert resp.status == 404  # nothing was pushed
