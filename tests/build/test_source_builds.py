"""Builds from an image's registered source, on the server (issue 14): ``strata build
<ns>/<name>`` queues a job that clones the source (``file://`` here, allowed with
``--source-allow file://``) at its branch head, builds it with the commit time as
SOURCE_DATE_EPOCH and registers the candidate for the account that asked; ``strata build
list|show|logs``; who may; sources outside the allow-list; a server killed during a job."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from build_support import (
    BASE,
    BASE_VERSION,
    DIST_TAG,
    NAMESPACE,
    Strata,
    git,
    labels_block,
    make_rootfs,
    sandbox_available,
    write_context,
)
from click.testing import CliRunner

from strata.cli.main import cli
from strata.server.auth_setup import webhook_key_path
from support.postgres import PostgresCluster
from support.server import StrataServer, strata_command

WHEN = {"GIT_AUTHOR_DATE": "2022-03-04T05:06:07Z", "GIT_COMMITTER_DATE":
        "2022-03-04T05:06:07Z", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x",
        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@x"}
PASSWORDS = {"alice": "alice-password-1", "bob": "bob-password-22"}


def _server(base: Path) -> StrataServer:
    return StrataServer(base, "--source-allow", "file://", env={"STRATA_BUILD_POLL": "0.2"})


def _setup(server: StrataServer, tmp: Path, database_args: list[str] | None = None) -> Strata:
    sandbox_available()
    tool = Strata(server, {"STRATA_URL": server.url, "STRATA_USER": server.admin_user,
                           "STRATA_PASSWORD": server.admin_password,
                           "STRATA_BUILD_CACHE": str(tmp / "cache")})
    assert tool("namespace", "add", NAMESPACE, "--dist-tag", DIST_TAG).exit_code == 0
    data = tool.json("base", "import", str(make_rootfs(tmp)), "--name", BASE, "--version",
                     BASE_VERSION, "--namespace", NAMESPACE)
    tool.json("release", "oob", f"{BASE}@{data['digest']}", "--advisory", "SB-1",
              "--reason", "base of the source-build tests")
    for name, image in (("alice", f"{NAMESPACE}/hello-src"), ("bob", f"{NAMESPACE}/other")):
        result = CliRunner().invoke(cli, ["user", "add", name, "--data", str(server.data_dir),
                                          *(database_args or []),
                                          "--role", "maintainer", "--image", image,
                                          "--password-stdin"], input=PASSWORDS[name] + "\n")
        assert result.exit_code == 0, result.output
    return tool


def source_repo(root: Path, name: str, run: str = "echo built > /built.txt") -> Path:
    repo = write_context(root, f"""
        FROM {BASE}:{BASE_VERSION}
        {labels_block(name)}
        RUN {run}
    """, {"help.md": "help\n"})
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "one", env=WHEN)
    git(repo, "checkout", "-q", "-b", DIST_TAG)  # one branch per namespace
    git(repo, "checkout", "-q", "main")
    (repo / "help.md").write_text("not on the namespace's branch\n")
    git(repo, "commit", "-q", "-am", "two", env=WHEN)
    return repo


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[StrataServer, Strata, Path]]:
    base = tmp_path_factory.mktemp("source-builds")
    with _server(base) as server:
        tool = _setup(server, base)
        repo = source_repo(base / "hello", "hello-src")
        added = tool("image", "add", f"{NAMESPACE}/hello-src", "--maintainer", "alice",
                     "--source-url", f"file://{repo}", "--source-branch", DIST_TAG)
        assert added.exit_code == 0, added.output
        yield server, tool, repo


def as_user(tool: Strata, name: str, *args: str) -> Any:
    return tool(*args, env={"STRATA_USER": name, "STRATA_PASSWORD": PASSWORDS[name]})


def test_a_maintainer_builds_from_the_registered_source(
        env: tuple[StrataServer, Strata, Path]) -> None:
    server, tool, repo = env
    result = as_user(tool, "alice", "build", f"{NAMESPACE}/hello-src", "--json")
    assert result.exit_code == 0, result.output
    job = json.loads(result.stdout)
    head = git(repo, "rev-parse", DIST_TAG)
    assert job["state"] == "succeeded" and job["attempts"] == 1, job
    assert (job["kind"], job["requested_by"]) == ("build", "alice")
    assert job["source_url"] == f"file://{repo}" and job["source_branch"] == DIST_TAG
    assert job["source_commit"] == head  # the branch head, not main's
    assert (job["base_repository"], job["base_tag"]) == (BASE, BASE_VERSION)
    assert job["base_digest"].startswith("sha256:") and job["packages_digest"]
    assert job["result_nvr"] == f"hello-src-1-1.{DIST_TAG}"
    # Registered as a candidate by alice, built at the commit's time, recorded as the URL.
    candidates = tool.json("candidate", "list", "--repository", f"{NAMESPACE}/hello-src")
    found = [c for c in candidates["candidates"] if c["digest"] == job["result_digest"]]
    assert found and found[0]["created_by"] == "alice", candidates
    _, config = tool.image(f"{NAMESPACE}/hello-src", job["result_digest"])
    assert config["created"] == "2022-03-04T05:06:07Z"
    assert config["config"]["Labels"]["vcs-ref"] == head
    # list / show / logs
    listed = tool.json("build", "list", "--repository", f"{NAMESPACE}/hello-src")
    assert job["id"] in [j["id"] for j in listed["builds"]]
    shown = tool.json("build", "show", str(job["id"]))
    assert shown["result_digest"] == job["result_digest"]
    logs = tool("build", "logs", str(job["id"]))
    assert logs.exit_code == 0
    assert "cloning file://" in logs.stdout and "RUN echo built" in logs.stdout
    assert f"built hello-src-1-1.{DIST_TAG}" in logs.stdout
    text = tool("build", "show", str(job["id"]))
    assert "succeeded" in text.stdout and head in text.stdout
    # Owner-only work area, left empty.
    work = server.data_dir / "work" / "builds"
    assert work.stat().st_mode & 0o077 == 0 and list(work.iterdir()) == []


def _metrics(server: StrataServer) -> tuple[float, float]:
    """(request body bytes the server received, blob mounts it answered 201)."""
    text = server.request("GET", "/metrics").body.decode()
    received = mounted = 0.0
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name.startswith("strata_http_received_bytes_total{"):
            received += float(value)
        elif name == ('strata_http_requests_total{method="POST",route="start_upload",'
                      'status="201"}'):
            mounted += float(value)
    return received, mounted


def test_a_server_build_mounts_the_base_layers_instead_of_uploading_them(
        env: tuple[StrataServer, Strata, Path], tmp_path: Path) -> None:
    """The job's token covers its repository; on the mount's insufficient_scope challenge it
    gets pull on the base repository too (as far as the requester may), so the base layers
    are mounted from there: none of their bytes is uploaded again."""
    server, tool, _ = env
    repo = source_repo(tmp_path / "mounted", "mounted-src")
    assert tool("image", "add", f"{NAMESPACE}/mounted-src", "--maintainer", "alice",
                "--source-url", f"file://{repo}", "--source-branch", DIST_TAG).exit_code == 0
    received, mounted = _metrics(server)
    result = as_user(tool, "alice", "build", f"{NAMESPACE}/mounted-src", "--json")
    assert result.exit_code == 0, result.output
    job = json.loads(result.stdout)
    assert job["state"] == "succeeded" and job["requested_by"] == "alice", job
    base, _ = tool.image(BASE, job["base_digest"])
    image, _ = tool.image(f"{NAMESPACE}/mounted-src", job["result_digest"])
    base_layers = [layer["digest"] for layer in base["layers"]]
    assert [layer["digest"] for layer in image["layers"]][:len(base_layers)] == base_layers
    base_bytes = sum(layer["size"] for layer in base["layers"])
    own_bytes = sum(layer["size"] for layer in image["layers"][len(base_layers):])
    received_now, mounted_now = _metrics(server)
    assert mounted_now - mounted >= len(base_layers)
    # what came in: the RUN layer, config, manifest, build record and API calls -- far less
    # than the base layer (~1 MiB of busybox) that a re-upload would have added
    assert received_now - received < base_bytes, (received_now - received, base_bytes)
    assert own_bytes < base_bytes // 4  # else the check above would prove nothing
    # out of the way of the base-release test below (it expects one dependant)
    assert tool("image", "set", f"{NAMESPACE}/mounted-src", "--status", "retired"
                ).exit_code == 0


def test_a_maintainers_own_build_mounts_the_base_layers_too(
        env: tuple[StrataServer, Strata, Path], tmp_path: Path) -> None:
    """The same on the other path: ``strata build DIR`` on a maintainer's machine (its own
    credentials, not a job's token) mounts the base layers, uploads none of their bytes."""
    server, tool, _ = env
    ctx = write_context(tmp_path / "ctx", f"""
        FROM {BASE}:{BASE_VERSION}
        {labels_block("mounted-cli")}
        COPY help.md /help.md
    """, {"help.md": "help\n"})
    assert tool("image", "add", f"{NAMESPACE}/mounted-cli", "--maintainer", "alice",
                "--reason", "test").exit_code == 0
    received, mounted = _metrics(server)
    result = as_user(tool, "alice", "build", str(ctx), "--json")
    assert result.exit_code == 0, result.output
    built = json.loads(result.stdout)
    base, _ = tool.image(BASE, built["base"]["digest"])
    base_bytes = sum(layer["size"] for layer in base["layers"])
    received_now, mounted_now = _metrics(server)
    assert mounted_now - mounted >= len(base["layers"])
    assert received_now - received < base_bytes, (received_now - received, base_bytes)
    assert tool("image", "set", f"{NAMESPACE}/mounted-cli", "--status", "retired"
                ).exit_code == 0


def test_the_reproducible_check_fails_for_a_non_deterministic_run(
        env: tuple[StrataServer, Strata, Path], tmp_path: Path) -> None:
    """A RUN writing random bytes: the review request shows ``reproducible`` failed and why
    (the two digests, the layer and the path that differ); every other check passes, the
    approval is refused for that check alone, and the same image with a deterministic RUN
    is approved through the same request path."""
    server, tool, _ = env
    result = CliRunner().invoke(cli, ["user", "add", "rita", "--data", str(server.data_dir),
                                      "--role", "reviewer", "--password-stdin"],
                                input="rita-password-4444\n")
    assert result.exit_code == 0, result.output
    rita = {"STRATA_USER": "rita", "STRATA_PASSWORD": "rita-password-4444"}
    noisy = source_repo(tmp_path / "noisy", "noisy-src", run="head -c 16 /dev/urandom > /r")
    submitted = as_user(tool, "alice", "image", "submit", f"{NAMESPACE}/noisy-src", "--git",
                        f"file://{noisy}", "--branch", DIST_TAG, "--json")
    assert submitted.exit_code == 0, submitted.output
    request = json.loads(submitted.stdout)
    checks = {c["name"]: c for c in request["checks"]}
    assert checks["reproducible"]["ok"] is False, checks
    assert [n for n, c in checks.items() if c["ok"] is not True] == ["reproducible"], checks
    reason = checks["reproducible"]["detail"]
    assert reason.startswith("two builds of one commit differ: sha256:"), reason
    assert checks["builds"]["detail"] in reason
    assert "r: content sha256:" in reason, reason  # the path, and what about it differs
    shown = tool("review", "show", str(request["id"]))
    assert "FAIL a second build reproduces its digest: two builds of one commit differ" \
        in shown.stdout, shown.stdout
    refused = tool("review", "approve", str(request["id"]), "--comment", "fine", env=rita)
    assert refused.exit_code == 1 and "reproducible" in refused.output, refused.output
    assert tool("review", "comment", str(request["id"]), "--comment", "write /r from the "
                "source, not /dev/urandom", env=rita).exit_code == 0
    rejected = tool("review", "reject", str(request["id"]), "--comment", "not reproducible",
                    "--json", env=rita)
    assert json.loads(rejected.stdout)["status"] == "rejected", rejected.output
    # fixed at the source: a new request passes every check and is approved
    fixed = source_repo(tmp_path / "fixed", "noisy-src", run="echo 0123456789abcdef > /r")
    again = json.loads(as_user(tool, "alice", "image", "submit", f"{NAMESPACE}/noisy-src",
                               "--git", f"file://{fixed}", "--branch", DIST_TAG,
                               "--json").stdout)
    assert all(c["ok"] is True for c in again["checks"]), again["checks"]
    approved = tool("review", "approve", str(again["id"]), "--comment", "ok", "--json",
                    env=rita)
    assert json.loads(approved.stdout)["status"] == "approved", approved.output
    assert tool.json("image", "show", f"{NAMESPACE}/noisy-src")["status"] == "active"


def test_releng_builds_any_image_and_the_log_follows_on_stderr(
        env: tuple[StrataServer, Strata, Path]) -> None:
    server, tool, _ = env
    result = CliRunner().invoke(cli, ["user", "add", "carol", "--data", str(server.data_dir),
                                      "--role", "releng", "--password-stdin"],
                                input="carol-password-333\n")
    assert result.exit_code == 0, result.output
    result = tool("build", f"{NAMESPACE}/hello-src", "--rebuild", "--reason", "by releng",
                  env={"STRATA_USER": "carol", "STRATA_PASSWORD": "carol-password-333"})
    assert result.exit_code == 0, result.output
    assert "queued" in result.stderr and "cloning file://" in result.stderr  # followed
    assert "RUN echo built" in result.stderr
    assert "succeeded" in result.stdout and f"hello-src-1-2.{DIST_TAG}" in result.stdout
    job = tool.json("build", "list", "--repository", f"{NAMESPACE}/hello-src")["builds"][0]
    assert (job["requested_by"], job["reason"], job["rebuild"]) == ("carol", "by releng", True)


def test_a_base_release_rebuilds_the_dependant_from_its_source(
        env: tuple[StrataServer, Strata, Path], tmp_path: Path) -> None:
    """The rebuild loop's job runs here too: a new base release queues a rebuild of
    hello-src (requested by the rebuild loop, acting as its releng robot) and the runner
    builds it from the registered source on the new base."""
    _, tool, repo = env
    before = {j["id"] for j in tool.json("build", "list")["builds"]}
    data = tool.json("base", "import", str(make_rootfs(tmp_path)), "--name", BASE,
                     "--version", BASE_VERSION, "--namespace", NAMESPACE,
                     "--label", "rebuilt=yes")
    tool.json("release", "oob", f"{BASE}@{data['digest']}", "--advisory", "SB-2",
              "--reason", "a new base")
    deadline = time.monotonic() + 90
    while True:
        jobs = [j for j in tool.json("build", "list")["builds"] if j["id"] not in before]
        if jobs and all(j["state"] not in ("queued", "running") for j in jobs):
            break
        assert time.monotonic() < deadline, jobs
        time.sleep(0.3)
    assert [(j["repository"], j["kind"], j["requested_by"]) for j in jobs] == [
        (f"{NAMESPACE}/hello-src", "rebuild", "rebuild-loop")]
    job = jobs[0]
    assert job["state"] == "succeeded", (job, tool("build", "logs", str(job["id"])).stdout)
    assert job["base_digest"] == data["digest"]
    assert job["source_commit"] == git(repo, "rev-parse", DIST_TAG)


def test_a_maintainer_of_another_image_is_refused(
        env: tuple[StrataServer, Strata, Path]) -> None:
    server, tool, _ = env
    before = tool.json("build", "list")["builds"]
    result = as_user(tool, "bob", "build", f"{NAMESPACE}/hello-src")
    assert result.exit_code == 1
    assert f"needs maintainer of {NAMESPACE}/hello-src" in result.output
    import base64
    basic = base64.b64encode(f"bob:{PASSWORDS['bob']}".encode()).decode()
    resp = server.request("POST", "/api/v1/builds", headers={
        "Authorization": f"Basic {basic}", "Content-Type": "application/json"},
        body=json.dumps({"repository": f"{NAMESPACE}/hello-src"}).encode())
    assert resp.status == 403
    anonymous = server.request("POST", "/api/v1/builds", headers={
        "Content-Type": "application/json"},
        body=json.dumps({"repository": f"{NAMESPACE}/hello-src"}).encode())
    assert anonymous.status == 401
    assert tool.json("build", "list")["builds"] == before  # nothing queued


def test_an_unknown_image_and_one_without_a_source(
        env: tuple[StrataServer, Strata, Path]) -> None:
    _, tool, _ = env
    result = tool("build", f"{NAMESPACE}/nope")
    assert result.exit_code == 1 and "unknown image" in result.output
    assert tool("image", "add", f"{NAMESPACE}/nosource").exit_code == 0
    result = tool("build", f"{NAMESPACE}/nosource")
    assert result.exit_code == 1 and "has no registered source" in result.output


@pytest.mark.parametrize("url", ["https://git.example.com/x.git", "ssh://git@host/x.git",
                                 "/srv/git/x.git", "file:///srv/../etc/x",
                                 "ext::sh -c touch% /tmp/pwned"])
def test_a_source_outside_the_allow_list_is_refused(
        env: tuple[StrataServer, Strata, Path], url: str) -> None:
    _, tool, _ = env
    name = f"{NAMESPACE}/out{abs(hash(url)) % 10000}"
    assert tool("image", "add", name, "--source-url", url, "--source-branch", "x"
                ).exit_code == 0
    result = tool("build", name)
    assert result.exit_code == 1, result.output
    assert "denied" in result.output.lower() or "not a plain git URL" in result.output
    assert tool.json("build", "list", "--repository", name)["builds"] == []


def test_logs_are_visible_while_the_build_runs_and_a_killed_server_retries_the_job(
        tmp_path: Path) -> None:
    with _server(tmp_path) as server:
        tool = _setup(server, tmp_path)
        repo = source_repo(tmp_path / "slow", "slow-src",
                           run="echo started-slow-step && sleep 4 && echo done > /done.txt")
        assert tool("image", "add", f"{NAMESPACE}/slow-src", "--source-url",
                    f"file://{repo}", "--source-branch", DIST_TAG).exit_code == 0
        queued = tool.json("build", f"{NAMESPACE}/slow-src", "--no-wait")
        job_id = queued["id"]
        assert queued["state"] == "queued"
        deadline = time.monotonic() + 60
        while True:  # the RUN step's output is in the log while the job runs
            shown = tool.json("build", "show", str(job_id))
            logs = tool("build", "logs", str(job_id)).stdout
            if shown["state"] == "running" and "started-slow-step" in logs:
                break
            assert shown["state"] in ("queued", "running"), shown
            assert time.monotonic() < deadline, logs
            time.sleep(0.2)
        server.kill()  # kill -9, in the middle of the RUN step
        server.start()
        deadline = time.monotonic() + 90
        while (job := tool.json("build", "show", str(job_id)))["state"] in ("queued",
                                                                             "running"):
            assert time.monotonic() < deadline, job
            time.sleep(0.3)
        assert job["state"] == "succeeded", job
        assert job["attempts"] == 2 and job["result_nvr"] == f"slow-src-1-1.{DIST_TAG}"
        logs = tool("build", "logs", str(job_id)).stdout
        assert "interrupted (the runner stopped); queued again" in logs
        assert "attempt 2" in logs
        assert "queued again" in server.log_text()


def _worker(tmp: Path, server: StrataServer, database_url: str, name: str
            ) -> subprocess.Popen[bytes]:
    """``strata worker`` on its own data dir (as on another build machine), given the
    server's secret key (which opens the signing keys in the database), in its own process
    group."""
    data = tmp / f"worker-{name}"
    data.mkdir(parents=True, mode=0o700)
    with (tmp / f"worker-{name}.log").open("wb") as log:
        return subprocess.Popen(
            [*strata_command(), "worker", "--data", str(data), "--database-url", database_url,
             "--url", server.url, "--source-allow", "file://", "--lease", "5", "--poll", "0.2",
             "--secret-key-file", str(webhook_key_path(server.data_dir)),
             "--worker-id", name], stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def test_workers_on_postgresql_take_the_jobs_and_retry_a_dead_workers_job(
        tmp_path: Path, postgres: PostgresCluster) -> None:
    """``strata serve --build-concurrency 0`` on PostgreSQL runs no job; ``strata worker``
    processes do. A worker killed (-9) during a job: another takes the job once the lease ran
    out, and finishes it."""
    url = postgres.create_database("source_builds_workers")
    with StrataServer(tmp_path, "--source-allow", "file://", "--build-concurrency", "0",
                      "--database-url", url) as server:
        tool = _setup(server, tmp_path, ["--database-url", url])
        fast = source_repo(tmp_path / "fast", "fast-src")
        slow = source_repo(tmp_path / "slow", "slow-src",
                           run="echo started-slow-step && sleep 4 && echo done > /done.txt")
        for name, repo in (("fast-src", fast), ("slow-src", slow)):
            assert tool("image", "add", f"{NAMESPACE}/{name}", "--source-url",
                        f"file://{repo}", "--source-branch", DIST_TAG).exit_code == 0
        slow_id = tool.json("build", f"{NAMESPACE}/slow-src", "--no-wait")["id"]
        time.sleep(1.5)
        assert tool.json("build", "show", str(slow_id))["state"] == "queued"  # serve runs none
        first = _worker(tmp_path, server, url, "w1")
        try:
            _wait(tool, slow_id, lambda job, logs: job["state"] == "running"
                  and "started-slow-step" in logs)
            assert tool.json("build", "show", str(slow_id))["worker"] == "w1"
        finally:
            _kill(first)
        second = _worker(tmp_path, server, url, "w2")
        try:
            fast_id = tool.json("build", f"{NAMESPACE}/fast-src", "--no-wait")["id"]
            for job_id in (slow_id, fast_id):
                job = _wait(tool, job_id, lambda job, logs: job["state"] not in (
                    "queued", "running"), seconds=120)
                assert job["state"] == "succeeded" and job["worker"] == "w2", job
            assert tool.json("build", "show", str(slow_id))["attempts"] == 2
            assert "queued again" in tool("build", "logs", str(slow_id)).stdout
        finally:
            _kill(second)


def _wait(tool: Strata, job_id: int, done: Any, seconds: float = 60.0) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        job = tool.json("build", "show", str(job_id))
        logs = tool("build", "logs", str(job_id)).stdout
        if done(job, logs):
            return job
        assert time.monotonic() < deadline, (job, logs)
        time.sleep(0.3)
