"""End to end: a real ``strata serve``, images pushed with skopeo, the ``strata`` CLI, pulls of
all three streams with ``skopeo inspect``, refused NVR overwrites through /v2/, and a crash in
the middle of a publish."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from support.server import StrataServer, strata_command

from .helpers import Image, make_image, write_layout

pytestmark = [pytest.mark.server, pytest.mark.interop]

TODAY = dt.datetime.now(dt.UTC).date()
LATER = (TODAY + dt.timedelta(days=7)).isoformat()
PASSWORD = "release-engineering-secret"


def add_releng(base: Path, name: str = "releng", role: str = "releng") -> None:
    """A release engineer account, made offline before the server starts."""
    subprocess.run([*strata_command(), "init", "--data", str(base / "data")],
                   capture_output=True, timeout=60, check=True)
    proc = subprocess.run([*strata_command(), "user", "add", name, "--role", role,
                           "--password-stdin", "--data", str(base / "data")],
                          input=PASSWORD + "\n", capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == 0, proc.stderr


class World:
    def __init__(self, server: StrataServer, tmp: Path, user: str = "releng") -> None:
        self.server = server
        self.tmp = tmp
        self.user = user

    def cli(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "STRATA_URL": self.server.url, "STRATA_USER": self.user,
               "STRATA_PASSWORD": PASSWORD}
        proc = subprocess.run([*strata_command(), *args], capture_output=True, text=True,
                              env=env, timeout=60, check=False)
        if ok:
            assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
        return proc

    def cli_json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "--json").stdout)

    def skopeo(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=120,
                              check=False)
        if ok:
            assert proc.returncode == 0, (args, proc.stderr)
        return proc

    def push(self, image: Image, repo: str = "f25/x", tag: str | None = None,
             ok: bool = True) -> subprocess.CompletedProcess[str]:
        layout = self.tmp / f"layout-{image.digest[7:19]}"
        write_layout(layout, image)
        dest = f"{repo}:{tag}" if tag else f"{repo}@{image.digest}"
        return self.skopeo("copy", "--dest-tls-verify=false",
                           f"--dest-creds={self.user}:{PASSWORD}",
                           f"oci:{layout}:build",
                           f"docker://{self.server.host_port}/{dest}", ok=ok)

    def build(self, version: str, release: str, repo: str = "f25/x", salt: str = "") -> str:
        dist = repo.split("/")[0] + "docker"
        image = make_image(repo.split("/")[1], version, f"{release}.{dist}", salt=salt)
        self.push(image, repo)
        return image.digest

    def inspect(self, repo: str, tag: str) -> dict[str, Any]:
        out = self.skopeo("inspect", "--tls-verify=false",
                          f"docker://{self.server.host_port}/{repo}:{tag}").stdout
        data: dict[str, Any] = json.loads(out)
        return data

    def tags(self, repo: str = "f25/x") -> list[str]:
        resp = self.server.request("GET", f"/v2/{repo}/tags/list")
        if resp.status == 404:
            return []
        return list(json.loads(resp.body)["tags"] or [])

    def digests(self, repo: str = "f25/x") -> dict[str, str]:
        """The stream tags of ``repo`` and their digests (the release's signature tags,
        ``sha256-<hex>.sig``, are left out: tests/trust checks them)."""
        tags = [t for t in self.tags(repo) if not t.endswith(".sig")]
        return {t: self.server.request(
            "HEAD", f"/v2/{repo}/manifests/{t}",
            headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}
        ).header("Docker-Content-Digest") or "" for t in tags}


def test_candidates_scheduled_and_oob_releases_pulled_with_skopeo(tmp_path: Path) -> None:
    add_releng(tmp_path / "srv")
    with StrataServer(tmp_path / "srv", "--workers", "2",
                      env={"STRATA_PUBLIC_HOST": "registry.example"}) as srv:
        w = World(srv, tmp_path)
        w.cli("namespace", "add", "f25", "--dist-tag", "f25docker", "--anchor", LATER)
        w.cli("image", "add", "f25/x", "--reason", "test fixture")
        d129 = w.build("129", "1")
        d130 = w.build("130", "1")
        for digest in (d129, d130):
            added = w.cli_json("candidate", "add", f"f25/x@{digest}")
            assert added["status"] == "candidate"
        assert w.digests() == {}  # candidates have no public tag
        [plan] = w.cli_json("release", "plan")["plans"]
        assert plan["next"][0]["date"] == LATER
        assert {m["tag"]: m["new_digest"] for m in plan["images"][0]["moves"]} == {
            "129-1.f25docker": d129, "130-1.f25docker": d130, "129": d129, "130": d130,
            "latest": d130}
        assert "latest" in w.cli("release", "plan").stdout
        published = w.cli_json("release", "publish")
        assert published["name"] == f"f25-{LATER}" and published["kind"] == "scheduled"

        expected = {"130-1.f25docker": d130, "130": d130, "latest": d130,
                    "129-1.f25docker": d129, "129": d129}
        for tag, digest in expected.items():
            info = w.inspect("f25/x", tag)
            assert info["Digest"] == digest, tag
        assert w.inspect("f25/x", "latest")["Labels"]["version"] == "130"
        before_oob = time.time()
        time.sleep(1.1)

        d129_2 = w.build("129", "2")
        oob = w.cli_json("release", "oob", "--advisory", "FEDORA-2025-42", "--reason",
                         "CVE-2025-4242 in libfoo", f"f25/x@{d129_2}")
        assert oob["kind"] == "oob"
        [notes] = oob["notes"]["images"]
        assert notes["old_nvr"] == "x-129-1.f25docker"
        assert notes["new_nvr"] == "x-129-2.f25docker"
        assert "podman pull registry.example/f25/x:129" in notes["pull"]
        assert w.inspect("f25/x", "129")["Digest"] == d129_2
        assert w.inspect("f25/x", "129-2.f25docker")["Digest"] == d129_2
        assert w.inspect("f25/x", "latest")["Digest"] == d130  # respin of 129: latest stays
        assert w.inspect("f25/x", "129-1.f25docker")["Digest"] == d129

        # The registry itself refuses to overwrite or move stream tags.
        evil = make_image("x", "130", "1.f25docker", salt="evil")
        for tag in ("130-1.f25docker", "latest", "130"):
            refused = w.push(evil, tag=tag, ok=False)
            assert refused.returncode != 0
            assert "denied" in refused.stderr.lower(), refused.stderr
        resp = srv.request("DELETE", "/v2/f25/x/manifests/130-1.f25docker", headers={
            "Authorization": aiohttp.encode_basic_auth("releng", PASSWORD)})
        assert resp.status == 403
        assert json.loads(resp.body)["errors"][0]["code"] == "DENIED"
        assert w.inspect("f25/x", "130-1.f25docker")["Digest"] == d130

        at = w.cli_json("history", "f25/x:129", "--at", str(before_oob))
        assert at["digest"] == d129 and at["nvr"] == "x-129-1.f25docker"
        assert d129_2[7:19] in w.cli("history", "f25/x:129").stdout
        w.cli("release", "rollback", "f25/x:129", "--to", "129-1.f25docker", "--reason",
              "libfoo fix breaks startup")
        assert w.inspect("f25/x", "129")["Digest"] == d129
        w.cli("stream", "eol", "f25/x:129")
        streams = w.cli_json("stream", "list", "f25/x")["streams"]
        assert {s["version"]: s["eol"] for s in streams} == {"129": True, "130": False}
        releases = w.cli_json("release", "list")["releases"]
        assert [r["kind"] for r in releases] == ["oob", "scheduled"]
        assert "## f25/x" in w.cli("release", "show", oob["name"]).stdout

        failed = w.cli("release", "publish", published["name"], ok=False)
        assert failed.returncode == 1 and "already published" in failed.stderr


def test_crash_during_publish_leaves_the_old_state(tmp_path: Path) -> None:
    base = tmp_path / "srv"
    add_releng(base)
    with StrataServer(base, "--workers", "1") as srv:
        w = World(srv, tmp_path)
        w.cli("namespace", "add", "f25", "--dist-tag", "f25docker", "--anchor", LATER)
        w.cli("image", "add", "f25/x", "--reason", "test fixture")
        d1 = w.build("130", "1")
        w.cli("candidate", "add", f"f25/x@{d1}")
        w.cli("release", "publish")
    old = {"130-1.f25docker": d1, "130": d1, "latest": d1}

    crashing = StrataServer(base, "--workers", "1",
                            env={"STRATA_FAULT_PUBLISH_DELAY": "120"}).start()
    try:
        w = World(crashing, tmp_path)
        d2 = w.build("130", "2")
        w.cli("image", "add", "f25/y", "--reason", "test fixture")
        dy = w.build("1", "1", repo="f25/y")
        w.cli("candidate", "add", f"f25/x@{d2}")
        w.cli("candidate", "add", f"f25/y@{dy}")
        env = {**os.environ, "STRATA_URL": crashing.url, "STRATA_USER": "releng",
               "STRATA_PASSWORD": PASSWORD}
        publish = subprocess.Popen([*strata_command(), "release", "publish"], env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while "fault injection: sleeping" not in crashing.log_text():
            if publish.poll() is not None or time.monotonic() > deadline:
                out, err = publish.communicate()
                pytest.fail(f"publish ended early: {out!r} {err!r}\n{crashing.log_text()}")
            time.sleep(0.05)
        crashing.kill()
        publish.communicate(timeout=60)
        assert publish.returncode != 0
    finally:
        crashing.kill()

    with StrataServer(base, "--workers", "1") as srv:
        w = World(srv, tmp_path)
        assert w.digests() == old
        assert w.digests("f25/y") == {}
        # nothing of the interrupted publish was signed either
        assert not [t for t in w.tags() if d2.split(":")[1] in t]
        assert w.tags("f25/y") == []
        assert len(w.cli_json("release", "list")["releases"]) == 1
        waiting = w.cli_json("candidate", "list")["candidates"]
        assert {b["nvr"] for b in waiting} == {"x-130-2.f25docker", "y-1-1.f25docker"}
        assert len(w.cli_json("history", "f25/x:latest")["events"]) == 1
        w.cli("release", "publish")
        assert w.digests() == {**old, "130-2.f25docker": d2, "130": d2, "latest": d2}
        assert w.digests("f25/y") == {"1-1.f25docker": dy, "1": dy, "latest": dy}


def test_several_workers_publish_a_due_release_once(tmp_path: Path) -> None:
    base = tmp_path / "srv"
    add_releng(base)
    # Set up with the timer off: f26's first release is due today, f25's tomorrow.
    with StrataServer(base, "--workers", "1", env={"STRATA_SCHEDULER_INTERVAL": "0"}) as srv:
        w = World(srv, tmp_path)
        tomorrow = (TODAY + dt.timedelta(days=1)).isoformat()
        w.cli("namespace", "add", "f25", "--dist-tag", "f25docker", "--anchor", tomorrow)
        w.cli("image", "add", "f25/x", "--reason", "test fixture")
        w.cli("namespace", "add", "f26", "--dist-tag", "f26docker", "--anchor",
              TODAY.isoformat())
        w.cli("candidate", "add", f"f25/x@{w.build('130', '1')}")
        w.cli("image", "add", "f26/z", "--reason", "test fixture")
        d2 = w.build("2", "1", repo="f26/z")
        w.cli("candidate", "add", f"f26/z@{d2}")
        plans = {p["namespace"]["name"]: p for p in w.cli_json("release", "plan")["plans"]}
        assert plans["f26"]["next"][0]["due"] and not plans["f25"]["next"][0]["due"]
        assert w.cli_json("release", "list")["releases"] == []
    with StrataServer(base, "--workers", "3", env={"STRATA_SCHEDULER_INTERVAL": "0.2"}) as srv:
        w = World(srv, tmp_path)
        deadline = time.monotonic() + 30
        while not w.digests("f26/z"):
            assert time.monotonic() < deadline, srv.log_text()
            time.sleep(0.1)
        time.sleep(1.0)  # every worker has had several chances to publish it again
        releases = w.cli_json("release", "list")["releases"]
        assert [(r["name"], r["actor"]) for r in releases] == [
            (f"f26-{TODAY.isoformat()}", "scheduler")]
        assert w.digests("f26/z") == {"2-1.f26docker": d2, "2": d2, "latest": d2}
        assert len(w.cli_json("history", "f26/z:latest")["events"]) == 1
        assert w.digests() == {}


def test_stream_rules_with_skopeo_and_the_cli_as_admin(tmp_path: Path) -> None:
    """Issue 11 through real clients: as admin, skopeo can neither mint an NVR tag (in a
    registered image or a name of a registered namespace) nor delete a pending build; the
    CLI withdraws it, after which skopeo may delete it; the CLI warns about a build that would
    move no stream; invalid names are 400 NAME_INVALID even for admin."""
    add_releng(tmp_path / "srv", "boss", "admin")
    with StrataServer(tmp_path / "srv", "--workers", "1") as srv:
        w = World(srv, tmp_path, user="boss")
        w.cli("namespace", "add", "f25", "--dist-tag", "f25docker", "--anchor", LATER)
        w.cli("image", "add", "f25/x", "--reason", "test fixture")
        d130 = w.build("130", "1")
        w.cli("candidate", "add", f"f25/x@{d130}")
        for repo in ("f25/x", "f25/newthing"):
            image = make_image(repo.split("/")[1], "131", "1.f25docker")
            refused = w.push(image, repo=repo, tag="131-1.f25docker", ok=False)
            assert refused.returncode != 0
            assert "stream-tags-release-only" in refused.stderr, refused.stderr
        assert w.digests() == {} and w.digests("f25/newthing") == {}
        dest = f"docker://{srv.host_port}/f25/x@{d130}"
        creds = f"--creds=boss:{PASSWORD}"
        refused = w.skopeo("delete", "--tls-verify=false", creds, dest, ok=False)
        assert refused.returncode != 0 and "build-protected" in refused.stderr, refused.stderr
        out = w.cli("candidate", "withdraw", f"f25/x@{d130}", "--reason", "wrong base").stdout
        assert "withdrawn by boss" in out and "wrong base" in out
        listed = w.cli("candidate", "list").stdout
        assert "x-130-1.f25docker" in listed and "withdrawn" in listed and "wrong base" in listed
        [entry] = w.cli_json("candidate", "list")["candidates"]
        assert entry["withdrawn"]["by"] == "boss" and entry["status"] == "withdrawn"
        w.skopeo("delete", "--tls-verify=false", creds, dest)
        # a build that is not newer than its stream: the CLI says so
        d2 = w.build("130", "2")
        w.cli("candidate", "add", f"f25/x@{d2}")
        w.cli("release", "publish")
        d1 = w.build("130", "0")  # (130-1 stays taken by the withdrawn build)
        added = w.cli("candidate", "add", f"f25/x@{d1}")
        assert "warning: x-130-0.f25docker is not newer than the current release" in \
            added.stderr, added.stderr
        assert w.cli_json("candidate", "add", f"f25/x@{d1}")["warnings"]
        for path in ("/v2/UPPER/case/manifests/latest", "/v2/" + "a" * 300 + "/tags/list"):
            resp = srv.request("GET", path, headers={
                "Authorization": aiohttp.encode_basic_auth("boss", PASSWORD)})
            assert resp.status == 400
            assert json.loads(resp.body)["errors"][0]["code"] == "NAME_INVALID"
