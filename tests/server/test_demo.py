"""``strata demo story`` (what ``make run`` tells) against a real ``strata serve`` that may clone
only the demo's own ``file://`` area: the three f25 images are submitted and approved by a
reviewer, the base and the images are released on the schedule, the base update's rebuilds go
out of band, every image's ``latest`` ends on a rebuild on the new base, and a second run on the
same data skips what is done instead of failing."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from support.clients import missing, require_static_busybox, require_tool
from support.server import StrataServer, strata_command

IMAGES = {"f25/cockpit": "130", "f25/kubernetes-node": "0.1", "f25/toolchain": "1"}


def test_the_demo_story_ends_with_every_image_rebuilt_on_the_new_base(tmp_path: Path) -> None:
    require_static_busybox()
    require_tool("git")
    if os.geteuid() != 0 or not Path("/proc/self/ns/user").exists():
        missing("root and user namespaces for the server's build jail", "run the tests as root")
    work = tmp_path / "demo"
    with StrataServer(tmp_path / "server", "--source-allow", f"file://{work}/") as server:
        env = {**os.environ, "STRATA_URL": server.url, "STRATA_USER": server.admin_user,
               "STRATA_PASSWORD": server.admin_password}

        def strata(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([*strata_command(), *args], capture_output=True, text=True,
                                  env=env, timeout=600, check=False)

        def data(*args: str) -> Any:
            proc = strata(*args, "--json")
            assert proc.returncode == 0, proc.stderr
            return json.loads(proc.stdout)

        added = subprocess.run([*strata_command(), "user", "add", "rita", "--role", "reviewer",
                                "--data", str(server.data_dir), "--password-stdin"],
                               input="rita-reviews-1234\n", capture_output=True, text=True,
                               check=False)
        assert added.returncode == 0, added.stderr
        env["STRATA_REVIEWER_PASSWORD"] = "rita-reviews-1234"
        first = strata("demo", "story", "--work", str(work), "--reviewer", "rita")
        assert first.returncode == 0, (first.stdout, first.stderr)
        lines = first.stdout.splitlines()
        assert "- release f25-demo-rebuilds (out of band, DEMO-2026-0001): " \
               "cockpit-130-2.f25docker, kubernetes-node-0.1-2.f25docker, " \
               "toolchain-1-2.f25docker" in lines, first.stdout
        assert f"podman pull --tls-verify=false {server.url.split('://')[1]}/f25/cockpit:130" \
               in first.stdout

        for repository in IMAGES:
            assert any(line.startswith(f"- {repository}: review ") and
                       line.endswith("approved by rita; the image is active")
                       for line in lines), first.stdout
        reviews = data("review", "list")["reviews"]
        assert sorted((r["repository"], r["status"]) for r in reviews) == [
            (repository, "approved") for repository in sorted(IMAGES)]
        for repository in IMAGES:
            image = data("image", "show", repository)
            assert (image["status"], image["maintainers"]) == ("active", ["admin"])
            assert image["summary"], image  # what the catalog and `podman search` show
        found = data("search", "cockpit")
        assert any(r.get("summary") for r in found["results"]), found

        releases = data("release", "list", "--namespace", "f25")["releases"]
        kinds = sorted((r["kind"], r["name"]) for r in releases)
        assert [k for k, _ in kinds] == ["oob", "oob", "scheduled", "scheduled"], kinds
        assert {"f25-demo-base-update", "f25-demo-rebuilds"} <= {n for _, n in kinds}
        new_base = data("history", "f25:25")["events"][-1]
        assert new_base["release"] == "f25-demo-base-update"

        builds = data("build", "list", "--namespace", "f25")["builds"]
        for repository, version in IMAGES.items():
            latest = data("history", f"{repository}:latest")["events"]
            assert [e["release"] for e in latest] == [latest[0]["release"], "f25-demo-rebuilds"]
            rebuilt = [b for b in builds if b["result_digest"] == latest[-1]["new_digest"]]
            assert len(rebuilt) == 1, (repository, builds)
            job = rebuilt[0]
            assert (job["repository"], job["kind"], job["requested_by"], job["state"]) == (
                repository, "rebuild", "rebuild-loop", "succeeded")
            assert job["base_digest"] == new_base["new_digest"]
            assert job["source_url"] == f"file://{work}/src/{repository.split('/')[1]}"
            assert job["result_nvr"] == f"{repository.split('/')[1]}-{version}-2.f25docker"
            assert data("history", f"{repository}:{version}")["events"][-1]["new_digest"] == \
                job["result_digest"]

        again = strata("demo", "story", "--work", str(work), "--reviewer", "rita")
        assert again.returncode == 0, (again.stdout, again.stderr)
        assert "- rebuilds: already released (f25-demo-rebuilds)" in again.stdout
        assert len(data("release", "list", "--namespace", "f25")["releases"]) == 4
        assert len(data("build", "list", "--namespace", "f25")["builds"]) == len(builds)
