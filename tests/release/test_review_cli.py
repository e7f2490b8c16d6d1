"""The review of a new image through the CLI against a real ``strata serve`` (issue 14):
``strata image submit`` (checks run at once), an unreviewed image refused by ``strata
candidate add`` and ``strata build`` (admin included), ``strata review approve`` refused to
the submitter and done by a reviewer, then the submitter's ``strata build`` registers the
candidate; ``--force --reason`` recorded; ``strata image set`` / ``maintainers``."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from support.server import StrataServer, strata_command

from .helpers import make_image, write_layout

pytestmark = [pytest.mark.server, pytest.mark.interop]

PASSWORD = "review-tests-secret"
CONTAINERFILE = """\
FROM f25:25
LABEL name="hello" version="1" summary="hello for the review tests" \\
      maintainer="Reviews <r@example.com>" usage="podman run f25/hello"
COPY motd /etc/motd
"""


def add_user(base: Path, name: str, *role: str) -> None:
    subprocess.run([*strata_command(), "init", "--data", str(base / "data")],
                   capture_output=True, timeout=60, check=True)
    proc = subprocess.run([*strata_command(), "user", "add", name, *role, "--password-stdin",
                           "--data", str(base / "data")], input=PASSWORD + "\n",
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr


class Cli:
    def __init__(self, server: StrataServer, tmp: Path) -> None:
        self.server, self.tmp = server, tmp

    def __call__(self, user: str, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "STRATA_URL": self.server.url, "STRATA_USER": user,
               "STRATA_PASSWORD": PASSWORD, "STRATA_BUILD_CACHE": str(self.tmp / "cache")}
        proc = subprocess.run([*strata_command(), *args], capture_output=True, text=True,
                              env=env, timeout=120, check=False)
        if ok:
            assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
        return proc

    def json(self, user: str, *args: str) -> Any:
        return json.loads(self(user, *args, "--json").stdout)


def git_source(root: Path) -> str:
    root.mkdir(parents=True)
    (root / "Containerfile").write_text(CONTAINERFILE)
    (root / "motd").write_text("hello\n")
    (root / "help.md").write_text("# hello\n")
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com",
           "HOME": str(root), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    for args in (["init", "-q", "-b", "f25"], ["add", "."], ["commit", "-q", "-m", "source"]):
        subprocess.run(["git", *args], cwd=root, env=env, check=True)
    return f"file://{root}"


def test_submit_review_approve_build_through_the_cli(tmp_path: Path) -> None:
    base = tmp_path / "srv"
    (base / "data").mkdir(parents=True)
    add_user(base, "releng", "--role", "releng")
    add_user(base, "alice", "--role", "maintainer", "--image", "f25/elsewhere")
    add_user(base, "rita", "--role", "reviewer")
    with StrataServer(base, "--workers", "1", "--source-allow", "file://") as srv:
        cli = Cli(srv, tmp_path)
        cli("releng", "namespace", "add", "f25", "--dist-tag", "f25docker")
        # the base: an image like any other, registered directly (recorded) and released
        cli("releng", "image", "add", "f25", "--reason", "base import")
        image = make_image("f25", "25", "1.f25docker")
        write_layout(tmp_path / "layout", image)
        subprocess.run(["skopeo", "copy", "--dest-tls-verify=false",
                        f"--dest-creds=releng:{PASSWORD}", f"oci:{tmp_path / 'layout'}:build",
                        f"docker://{srv.host_port}/f25@{image.digest}"],
                       check=True, capture_output=True, timeout=120)
        cli("releng", "candidate", "add", f"f25@{image.digest}")
        cli("releng", "release", "oob", f"f25@{image.digest}", "--advisory", "BASE-1",
            "--reason", "the base")
        url = git_source(tmp_path / "hello")
        # refused at submit time: a source outside the allow-list
        refused = cli("alice", "image", "submit", "f25/hello", "--git", "ssh://git@x/y.git",
                      ok=False)
        assert refused.returncode != 0 and "--source-allow" in refused.stderr
        request = cli.json("alice", "image", "submit", "f25/hello", "--git", url)
        assert [c["ok"] for c in request["checks"]] == [True] * 7, request["checks"]
        shown = cli("alice", "review", "show", str(request["id"])).stdout
        assert "f25/hello (open)" in shown and "a second build reproduces its digest" in shown
        # unreviewed: refused to everyone, from the CLI and from a build
        ctx = tmp_path / "hello"
        for user in ("releng", "alice"):
            build = cli(user, "build", str(ctx), "--namespace", "f25", ok=False)
            assert build.returncode == 2, (build.stdout, build.stderr)
            assert "strata image submit f25/hello" in build.stderr
        job = cli("releng", "build", "f25/hello", "--no-wait", ok=False)  # a server build
        assert job.returncode != 0 and "strata image submit f25/hello" in job.stderr
        assert cli.json("releng", "build", "list")["builds"] == []
        digest = cli.json("releng", "build", str(ctx), "--namespace", "f25", "--force",
                          "--reason", "smoke test before the review")["digest"]
        forced = cli.json("releng", "image", "show", "f25/hello")
        assert forced["status"] == "in-review"
        events = json.loads(srv.request("GET", "/api/v1/images/f25/hello/events").body)
        assert [(e["event"], e["reason"]) for e in events["events"]][-1] == (
            "forced-registration", "smoke test before the review")
        other = make_image("hello", "2", "1.f25docker")
        write_layout(tmp_path / "layout2", other)
        subprocess.run(["skopeo", "copy", "--dest-tls-verify=false",
                        f"--dest-creds=releng:{PASSWORD}", f"oci:{tmp_path / 'layout2'}:build",
                        f"docker://{srv.host_port}/f25/hello@{other.digest}"],
                       check=True, capture_output=True, timeout=120)
        refused = cli("releng", "candidate", "add", f"f25/hello@{other.digest}", ok=False)
        assert refused.returncode != 0 and "submit it for review" in refused.stderr
        refused = cli("releng", "candidate", "add", f"f25/hello@{other.digest}", "--force",
                      ok=False)
        assert refused.returncode == 2 and "--force needs --reason" in refused.stderr
        # the submitter cannot approve; a reviewer can
        mine = cli("alice", "review", "approve", str(request["id"]), "--comment", "lgtm",
                   ok=False)
        assert mine.returncode != 0 and "reviewer" in mine.stderr
        cli("rita", "review", "comment", str(request["id"]), "--comment", "nice")
        approved = cli.json("rita", "review", "approve", str(request["id"]),
                            "--comment", "welcome")
        assert approved["status"] == "approved"
        assert [r["status"] for r in cli.json("rita", "review", "list")["reviews"]] == [
            "approved"]
        shown_image = cli.json("alice", "image", "show", "f25/hello")
        assert shown_image["status"] == "active" and shown_image["maintainers"] == ["alice"]
        # the maintainer's build registers (a new release number above the forced one)
        built = cli.json("alice", "build", str(ctx), "--namespace", "f25", "--rebuild")
        assert built["candidate"]["created_by"] == "alice" and built["digest"] != digest
        assert built["nvr"] == "hello-1-2.f25docker"
        # sources: the maintainer sets source and summary, not the status
        cli("alice", "image", "set", "f25/hello", "--summary", "Hello")
        refused = cli("alice", "image", "set", "f25/hello", "--status", "retired", ok=False)
        assert refused.returncode != 0 and "releng or admin" in refused.stderr
        refused = cli("alice", "image", "maintainers", "f25/hello", "--add", "rita", ok=False)
        assert refused.returncode != 0
        shown_image = cli.json("releng", "image", "maintainers", "f25/hello", "--add", "rita")
        assert shown_image["maintainers"] == ["alice", "rita"]
        # the image's own history: review, builds, candidates, a withdrawal and a release
        job = cli.json("alice", "build", "f25/hello")  # a server build of the source
        assert job["state"] == "succeeded", job
        cli("releng", "candidate", "withdraw", f"f25/hello@{digest}", "--reason", "superseded")
        released = cli.json("releng", "release", "oob", f"f25/hello@{built['digest']}",
                            "--advisory", "HELLO-1", "--reason", "first release")
        data = cli.json("alice", "history", "f25/hello")
        assert data["repository"] == "f25/hello"
        events = data["events"]
        names = [e["event"] for e in events]
        for earlier, later in (("submitted", "approved"), ("approved", "build-queued"),
                               ("build-queued", "build-succeeded"),
                               ("build-succeeded", "candidate-withdrawn"),
                               ("candidate-withdrawn", "released")):
            assert names.index(earlier) < names.index(later), names
        assert [e["at"] for e in events] == sorted(e["at"] for e in events)
        by = {e["event"]: e for e in events}
        assert (by["submitted"]["actor"], by["approved"]["actor"]) == ("alice", "rita")
        assert by["approved"]["detail"].startswith("welcome")
        assert by["changed"]["detail"] == "summary=- -> Hello"
        assert by["maintainer-added"]["detail"] == "maintainer=rita"
        assert by["submitted"]["detail"] == (f"request={request['id']}, source_branch=f25, "
                                             f"source_url={url}")
        forced_detail = by["forced-registration"]["detail"]
        assert forced_detail.startswith("smoke test before the review; digest=sha256:")
        assert "nvr=hello-1-1.f25docker" in forced_detail
        registered = [(e["nvr"], e["actor"]) for e in events
                      if e["event"] == "candidate-registered"]
        assert sorted(registered) == [("hello-1-1.f25docker", "releng"),
                                      ("hello-1-2.f25docker", "alice")]
        assert by["build-queued"]["actor"] == "alice" and by["build-queued"]["job"] == job["id"]
        assert "hello-1-2.f25docker" in by["build-succeeded"]["detail"]
        assert "on f25:25 sha256:" in by["build-succeeded"]["detail"]
        assert by["candidate-withdrawn"]["detail"] == "hello-1-1.f25docker: superseded"
        assert by["released"]["release"] == released["name"]
        assert by["released"]["detail"] == (f"hello-1-2.f25docker in {released['name']} "
                                             "(oob)")
        text = cli("alice", "history", "f25/hello").stdout
        assert "\tsubmitted\talice\trequest=" in text and "\tapproved\trita\twelcome" in text
        assert f"\tbuild-succeeded\talice\tjob {job['id']}: hello-1-2.f25docker" in text
        assert f"\treleased\treleng\thello-1-2.f25docker in {released['name']}" in text
        assert len(text.splitlines()) == len(events)
        refused = cli("alice", "history", "f25/hello", "--at", "2026-01-01", ok=False)
        assert refused.returncode == 2 and "--at needs a tag" in refused.stderr
