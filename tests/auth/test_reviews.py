"""The review of new images end to end through the JSON API, with accounts (issue 14).

A base ``f25`` is released in namespace ``f25``; sources are git repositories on disk
(``file://``, allowed by this server's ``--source-allow``). The automated checks run for real:
the source is cloned, inspected and built twice with the builder (no RUN step, so no jail
is needed), the base pulled from the app under test.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from strata.oci.mediatypes import OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST
from strata.review.checks import SourceChecks

from .conftest import AuthEnv, EnvFactory

GOOD = """\
FROM f25:25
LABEL name="hello" version="1" summary="hello for the review tests" \\
      maintainer="Reviews <r@example.com>" usage="podman run f25/hello"
COPY motd /etc/motd
"""
BAD = """\
FROM scratch
LABEL name="hello" version="1"
COPY motd /etc/motd
"""


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_tar() -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in (("etc/os-release", b"ID=f25\n"), ("bin/sh", b"")):
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(content), 0
            tar.addfile(info, io.BytesIO(content))
    return gzip.compress(raw.getvalue(), mtime=0)


async def answer(resp: Any, status: int, code: str | None = None) -> Any:
    body = await resp.json()
    assert resp.status == status, body
    if code is not None:
        assert body["errors"][0]["code"] == code, body
    return body


async def push(env: AuthEnv, repo: str, labels: dict[str, str]) -> str:
    """An image of ``repo`` pushed by digest as admin (a real gzipped tar layer)."""
    layer = layer_tar()
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "config": {"Labels": labels, "Env": ["PATH=/bin"]},
                         "rootfs": {"type": "layers",
                                    "diff_ids": [sha(gzip.decompress(layer))]}},
                        sort_keys=True).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha(config), "size": len(config)},
        "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": sha(layer), "size": len(layer)}],
    }, sort_keys=True).encode()
    for blob in (layer, config):
        resp = await env.client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": sha(blob)},
                                     data=blob, headers=env.creds("admin"))
        assert resp.status == 201, await resp.text()
    resp = await env.client.put(f"/v2/{repo}/manifests/{sha(manifest)}", data=manifest,
                                headers={**env.creds("admin"), "Content-Type": OCI_MANIFEST})
    assert resp.status == 201, await resp.text()
    return sha(manifest)


def git_source(root: Path, containerfile: str, *, help_file: bool = True) -> str:
    root.mkdir(parents=True)
    (root / "Containerfile").write_text(containerfile)
    (root / "motd").write_text("hello\n")
    if help_file:
        (root / "help.md").write_text("# hello\n")
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com",
           "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z",
           "HOME": str(root), "PATH": "/usr/bin:/bin"}
    for args in (["init", "-q", "-b", "f25"], ["add", "."], ["commit", "-q", "-m", "source"]):
        subprocess.run(["git", *args], cwd=root, env=env, check=True)
    return f"file://{root}"


@pytest.fixture
async def env(make_env: EnvFactory, tmp_path: Path) -> AuthEnv:
    checker = SourceChecks("http://placeholder", work_dir=tmp_path / "reviews")
    env = await make_env(release=True, source_allow=("file://",), checker=checker)
    checker.registry_url = str(env.client.make_url("")).rstrip("/")
    admin = env.creds("admin")
    await answer(await env.client.post("/api/v1/namespaces", json={
        "name": "f25", "dist_tag": "f25docker"}, headers=admin), 201)
    await answer(await env.client.post("/api/v1/images", json={
        "repository": "f25", "reason": "base import"}, headers=admin), 201)
    digest = await push(env, "f25", {"name": "f25", "version": "25",
                                     "release": "1.f25docker"})
    await answer(await env.client.post("/api/v1/candidates", json={
        "reference": f"f25@{digest}"}, headers=admin), 201)
    await answer(await env.client.post("/api/v1/releases/oob", json={
        "references": [f"f25@{digest}"], "advisories": ["BASE-1"], "reason": "the base"},
        headers=admin), 201)
    return env


async def submit(env: AuthEnv, account: str, repository: str, url: str,
                 status: int = 201, code: str | None = None) -> Any:
    return await answer(await env.client.post("/api/v1/reviews", json={
        "repository": repository, "git": url}, headers=env.creds(account)), status, code)


async def test_approval_makes_the_image_active_and_its_candidates_welcome(
        env: AuthEnv, tmp_path: Path) -> None:
    url = git_source(tmp_path / "hello", GOOD)
    request = await submit(env, "other", "f25/hello", url)
    assert (request["status"], request["submitter"]) == ("open", "other")
    assert request["source"] == {"url": url, "branch": "f25"}  # the namespace's branch
    checks = {c["name"]: c for c in request["checks"]}
    assert list(checks) == ["containerfile", "labels", "help", "base", "builds",
                            "reproducible", "usage"]
    assert all(c["ok"] is True for c in checks.values()), checks
    assert checks["reproducible"]["detail"] == checks["builds"]["detail"]  # the digest
    image = await answer(await env.client.get("/api/v1/images/f25/hello"), 200)
    assert image["status"] == "in-review"
    # search knows it at once, in review (issue 15)
    found = await answer(await env.client.get("/api/v1/search", params={
        "q": "hello", "status": "in-review"}), 200)
    assert [h["repository"] for h in found["results"]] == ["f25/hello"]
    # until approved, nobody registers a candidate of it, admin included
    digest = await push(env, "f25/hello", {"name": "hello", "version": "1",
                                           "release": "1.f25docker"})
    ref = {"reference": f"f25/hello@{digest}"}
    err = await answer(await env.client.post("/api/v1/candidates", json=ref,
                                             headers=env.creds("admin")), 403, "DENIED")
    assert "still in review" in err["errors"][0]["message"]
    assert "strata image submit f25/hello" in err["errors"][0]["message"]
    path = f"/api/v1/reviews/{request['id']}"
    # the submitter cannot decide; a maintainer is no reviewer; permission before the body
    err = await answer(await env.client.post(f"{path}/approve", json={"comment": "mine"},
                                             headers=env.creds("other")), 403, "DENIED")
    assert "needs role reviewer, releng or admin" in err["errors"][0]["message"]
    await answer(await env.client.post(f"{path}/approve", data=b"{nope",
                                       headers=env.creds("maint")), 403, "DENIED")
    await answer(await env.client.post(f"{path}/approve", data=b"{nope"), 401, "UNAUTHORIZED")
    await answer(await env.client.post(f"{path}/approve", json={},
                                       headers=env.creds("reviewer")), 400, "INVALID")
    shown = await answer(await env.client.post(f"{path}/comment", json={
        "comment": "looks fine"}, headers=env.creds("reviewer")), 200)
    assert shown["comments"][-1] == {**shown["comments"][-1], "author": "reviewer",
                                     "kind": "comment", "text": "looks fine"}
    await answer(await env.client.post(f"{path}/comment", json={"comment": "thanks"},
                                       headers=env.creds("other")), 200)  # the submitter
    await answer(await env.client.post(f"{path}/comment", json={"comment": "me too"},
                                       headers=env.creds("maint")), 403, "DENIED")
    approved = await answer(await env.client.post(f"{path}/approve", json={
        "comment": "welcome"}, headers=env.creds("reviewer")), 200)
    assert (approved["status"], approved["decided_by"]) == ("approved", "reviewer")
    await answer(await env.client.post(f"{path}/reject", json={"comment": "too late"},
                                       headers=env.creds("reviewer")), 409, "CONFLICT")
    image = await answer(await env.client.get("/api/v1/images/f25/hello"), 200)
    assert image["status"] == "active" and image["maintainers"] == ["other"]
    found = await answer(await env.client.get("/api/v1/search", params={
        "q": "hello", "status": "active"}), 200)
    assert [h["repository"] for h in found["results"]] == ["f25/hello"]  # approved: active
    assert image["source"] == {"url": url, "branch": "f25"}
    # the submitter is now its maintainer: registers the candidate, sets its summary
    build = await answer(await env.client.post("/api/v1/candidates", json=ref,
                                               headers=env.creds("other")), 201)
    assert build["status"] == "candidate"
    await answer(await env.client.patch("/api/v1/images/f25/hello", json={
        "summary": "hello"}, headers=env.creds("other")), 200)
    events = (await answer(await env.client.get("/api/v1/images/f25/hello/events"),
                           200))["events"]
    assert [e["event"] for e in events] == ["submitted", "approved", "changed"]
    assert (events[1]["actor"], events[1]["reason"]) == ("reviewer", "welcome")
    listed = await answer(await env.client.get("/api/v1/reviews",
                                               params={"status": "approved"}), 200)
    assert [r["id"] for r in listed["reviews"]] == [request["id"]]
    # an active image is not submitted again
    await submit(env, "other", "f25/hello", url, 409, "CONFLICT")


async def test_a_rejected_review_leaves_the_image_refused(env: AuthEnv, tmp_path: Path) -> None:
    url = git_source(tmp_path / "hello", GOOD)
    request = await submit(env, "maint", "f25/hello", url)
    await submit(env, "other", "f25/hello", url, 409, "CONFLICT")  # one open request
    path = f"/api/v1/reviews/{request['id']}"
    rejected = await answer(await env.client.post(f"{path}/reject", json={
        "comment": "we ship hello elsewhere"}, headers=env.creds("releng")), 200)
    assert rejected["status"] == "rejected"
    assert rejected["comments"][-1]["kind"] == "reject"
    await answer(await env.client.post(f"{path}/approve", json={"comment": "changed my mind"},
                                       headers=env.creds("reviewer")), 409, "CONFLICT")
    image = await answer(await env.client.get("/api/v1/images/f25/hello"), 200)
    assert image["status"] == "in-review"
    digest = await push(env, "f25/hello", {"name": "hello", "version": "1",
                                           "release": "1.f25docker"})
    err = await answer(await env.client.post("/api/v1/candidates", json={
        "reference": f"f25/hello@{digest}"}, headers=env.creds("admin")), 403, "DENIED")
    assert "submit it for review" in err["errors"][0]["message"]
    # forced, with a reason: recorded
    await answer(await env.client.post("/api/v1/candidates", json={
        "reference": f"f25/hello@{digest}", "force": True, "reason": "hotfix for an outage"},
        headers=env.creds("releng")), 201)
    events = (await answer(await env.client.get("/api/v1/images/f25/hello/events"),
                           200))["events"]
    assert [(e["event"], e["actor"], e["reason"]) for e in events][1:] == [
        ("rejected", "releng", "we ship hello elsewhere"),
        ("forced-registration", "releng", "hotfix for an outage")]
    # a new request may be opened after a rejection
    again = await submit(env, "maint", "f25/hello", url)
    assert again["id"] != request["id"]


async def test_a_failing_check_blocks_the_approval(env: AuthEnv, tmp_path: Path) -> None:
    url = git_source(tmp_path / "bad", BAD, help_file=False)
    request = await submit(env, "maint", "f25/hello", url)
    checks = {c["name"]: c for c in request["checks"]}
    assert checks["containerfile"]["ok"] is True
    assert checks["labels"]["ok"] is False and "summary" in checks["labels"]["detail"]
    assert checks["help"]["ok"] is False
    assert checks["usage"]["ok"] is False
    assert checks["base"]["ok"] is False and "FROM scratch" in checks["base"]["detail"]
    assert checks["builds"]["ok"] is None and checks["reproducible"]["ok"] is None
    err = await answer(await env.client.post(f"/api/v1/reviews/{request['id']}/approve", json={
        "comment": "ok"}, headers=env.creds("reviewer")), 409, "CONFLICT")
    assert "labels, help, base, builds, reproducible, usage" in err["errors"][0]["message"]
    # a Containerfile that does not parse; a base that is not an active image of f25
    broken = git_source(tmp_path / "broken", "FROM f25:25\nFROBNICATE\n")
    request = await submit(env, "other", "f25/broken", broken)
    first = request["checks"][0]
    assert (first["name"], first["ok"]) == ("containerfile", False)
    assert all(c["ok"] is None for c in request["checks"][1:])
    elsewhere = git_source(tmp_path / "elsewhere", GOOD.replace("f25:25", "f25/hello:1"))
    request = await submit(env, "other", "f25/other2", elsewhere)
    base = next(c for c in request["checks"] if c["name"] == "base")
    assert base["ok"] is False and "not an active image of namespace f25" in base["detail"]


async def test_submit_checks_the_source_and_the_caller_first(make_env: EnvFactory,
                                                             env: AuthEnv) -> None:
    await answer(await env.client.post("/api/v1/reviews", data=b"{nope"), 401, "UNAUTHORIZED")
    await answer(await env.client.post("/api/v1/reviews", data=b"{nope",
                                       headers=env.creds("other")), 400, "INVALID")
    await submit(env, "other", "f26/x", "file:///nowhere", 404, "NOT_FOUND")
    await submit(env, "other", "f25/x", "file:///srv/../etc/x", 403, "DENIED")
    await answer(await env.client.get("/api/v1/reviews/999"), 404, "NOT_FOUND")
    await answer(await env.client.get("/api/v1/reviews/abc"), 400, "INVALID")
    await answer(await env.client.get("/api/v1/reviews", params={"status": "x"}), 400,
                 "INVALID")
    # the default allow-list: https:// only
    plain = await make_env(release=True)
    await answer(await plain.client.post("/api/v1/namespaces", json={
        "name": "f25", "dist_tag": "f25docker"}, headers=plain.creds("admin")), 201)
    for url in ("file:///etc", "ssh://git@host/x.git", "/srv/git/x", "git@host:x.git",
                "ext::sh -c id"):
        err = await submit(plain, "other", "f25/x", url, 403, "DENIED")
        assert "--source-allow" in err["errors"][0]["message"] or \
            "plain git URL" in err["errors"][0]["message"] or \
            "whitespace" in err["errors"][0]["message"]
    listed = await answer(await plain.client.get("/api/v1/images"), 200)
    assert listed["images"] == []  # nothing was created
