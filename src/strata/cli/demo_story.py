"""``strata demo story``: the release story of namespace ``f25``, told against a running server.

A base image (Debian's static busybox) is imported and released on the schedule; three images
(``cockpit`` 130, ``kubernetes-node`` 0.1, ``toolchain`` 1) get git repositories of their own
(under the work directory), are submitted for review with those sources and approved (by the
reviewer account given), built on the server from their branch head and released in the next
scheduled release; then a base update is released out of band, the rebuild loop rebuilds all
three on it, and the rebuilds go out in an out-of-band release. Every step drives the ``strata``
CLI, prints one line, and is skipped when the server already has its result, so the story can
be told again on the same data.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NAMESPACE = "f25"
DIST_TAG = "f25docker"
BASE = "f25"
BASE_VERSION = "25"
ADVISORY = "DEMO-2026-0001"
BASE_UPDATE = "f25-demo-base-update"
REBUILDS = "f25-demo-rebuilds"
APPLETS = ("sh", "echo", "cat", "ls", "env", "true")
GIT_ENV = {"GIT_AUTHOR_NAME": "strata demo", "GIT_AUTHOR_EMAIL": "demo@example.com",
           "GIT_COMMITTER_NAME": "strata demo", "GIT_COMMITTER_EMAIL": "demo@example.com",
           "GIT_AUTHOR_DATE": "2016-11-22T00:00:00Z",
           "GIT_COMMITTER_DATE": "2016-11-22T00:00:00Z"}


class DemoError(Exception):
    """A step of the story failed (its message says which and why)."""


@dataclass(frozen=True)
class DemoImage:
    name: str
    version: str
    summary: str
    usage: str

    @property
    def repository(self) -> str:
        return f"{NAMESPACE}/{self.name}"


IMAGES = (
    DemoImage("cockpit", "130", "Cockpit, the server's web console",
              "podman run -d -p 9090:9090 f25/cockpit"),
    DemoImage("kubernetes-node", "0.1", "Kubernetes node services",
              "podman run --privileged f25/kubernetes-node"),
    DemoImage("toolchain", "1", "The build toolchain of the f25 images",
              "podman run --rm -it f25/toolchain"),
)


@dataclass(frozen=True)
class Cli:
    """The ``strata`` CLI of this interpreter's environment, run as a subprocess."""

    url: str
    env: Mapping[str, str]

    def run(self, *args: str) -> str:
        proc = subprocess.run([*strata_command(), *args, "--url", self.url],
                              capture_output=True, text=True,
                              env={**os.environ, **self.env}, check=False)
        if proc.returncode != 0:
            raise DemoError(f"strata {' '.join(args)}: {proc.stderr.strip() or proc.stdout}")
        return proc.stdout

    def ok(self, *args: str) -> bool:
        try:
            self.run(*args)
        except DemoError:
            return False
        return True

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "--json"))


def strata_command() -> list[str]:
    exe = Path(sys.executable).parent / "strata"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("strata")
    if found is None:
        raise DemoError("the strata command is not installed")
    return [found]


def busybox() -> Path:
    found = shutil.which("busybox")
    if found is None:
        raise DemoError("busybox is missing: install Debian's busybox-static")
    return Path(found).resolve()


def busybox_version() -> str:
    proc = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "busybox-static"],
                          capture_output=True, text=True, check=False)
    return proc.stdout.strip() if proc.returncode == 0 and proc.stdout.strip() else "1.36.1-1"


def base_rootfs(work: Path, label: str, package_version: str) -> Path:
    """A root filesystem around the static busybox with a dpkg database naming
    ``package_version`` (what the release notes compare), as a .tar.gz."""
    root = work / f"rootfs-{label}"
    if root.exists():
        shutil.rmtree(root)
    for sub in ("bin", "etc", "tmp", "root", "var/lib/dpkg"):
        (root / sub).mkdir(parents=True)
    shutil.copy2(busybox(), root / "bin" / "busybox")
    (root / "bin" / "busybox").chmod(0o755)
    for applet in APPLETS:
        (root / "bin" / applet).symlink_to("busybox")
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\n")
    (root / "etc" / "os-release").write_text(
        f'NAME="f25 demo"\nVERSION_ID={BASE_VERSION}\nBUILD_ID={label}\n')
    (root / "tmp").chmod(0o1777)
    (root / "var" / "lib" / "dpkg" / "status").write_text(
        f"Package: busybox-static\nStatus: install ok installed\nVersion: {package_version}\n"
        "Architecture: amd64\n")
    tarball = work / f"rootfs-{label}.tar.gz"
    with tarfile.open(tarball, "w:gz") as tf:
        tf.add(root, arcname=".")
    shutil.rmtree(root)
    return tarball


def git(repo: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          env={**os.environ, **GIT_ENV}, check=False)
    if proc.returncode != 0:
        raise DemoError(f"git {' '.join(args)} in {repo}: {proc.stderr.strip()}")
    return proc.stdout.strip()


def source_repo(work: Path, image: DemoImage) -> Path:
    """The image's git repository (branch ``f25``): a Containerfile with the labels the policy
    wants, a help file and a message; created once."""
    repo = work / "src" / image.name
    if (repo / ".git").exists():
        return repo
    repo.mkdir(parents=True, exist_ok=True)
    (repo / "Containerfile").write_text(
        f"FROM {BASE}:{BASE_VERSION}\n"
        f'LABEL name="$FGC/{image.name}" version="{image.version}" '
        f'summary="{image.summary}" maintainer="strata demo <demo@example.com>" '
        f'usage="{image.usage}"\n'
        "COPY help.md /help.md\n"
        f"COPY motd /etc/motd-{image.name}\n"
        f'CMD ["/bin/cat", "/etc/motd-{image.name}"]\n')
    (repo / "help.md").write_text(f"# {image.name}\n\n{image.summary}.\n\n"
                                  f"Usage: `{image.usage}`\n")
    (repo / "motd").write_text(f"{image.name} {image.version}, built by strata from git\n")
    git(repo, "init", "-q", "-b", NAMESPACE)
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", f"{image.name} {image.version}")
    return repo


def _released_tags(cli: Cli, repository: str, tag: str) -> list[dict[str, Any]]:
    try:
        events: list[dict[str, Any]] = cli.json("history", f"{repository}:{tag}")["events"]
    except DemoError:
        return []
    return events


def _releases(cli: Cli) -> dict[str, dict[str, Any]]:
    data = cli.json("release", "list", "--namespace", NAMESPACE)
    return {r["name"]: r for r in data["releases"]}


def _wait_rebuilds(cli: Cli, base_digest: str, timeout: float) -> dict[str, dict[str, Any]]:
    """The newest build job per image on ``base_digest``, once each has ended."""
    deadline = time.monotonic() + timeout
    wanted = {i.repository for i in IMAGES}
    while True:
        jobs = cli.json("build", "list", "--namespace", NAMESPACE)["builds"]
        found: dict[str, dict[str, Any]] = {}
        for job in jobs:  # newest first
            if (job["repository"] in wanted and job["repository"] not in found
                    and job.get("base_digest") in (base_digest, None)
                    and job["kind"] == "rebuild"):
                found[job["repository"]] = job
        done = {r: j for r, j in found.items()
                if j["state"] not in ("queued", "running") and j.get("base_digest")}
        if set(done) == wanted:
            return done
        if time.monotonic() > deadline:
            raise DemoError(f"rebuilds on the new base not done in {timeout:.0f}s: "
                            + ", ".join(f"{r} {j['state']}" for r, j in found.items()))
        time.sleep(0.5)


def _open_review(cli: Cli, repository: str) -> dict[str, Any] | None:
    reviews: list[dict[str, Any]] = cli.json("review", "list")["reviews"]
    return next((r for r in reviews if r.get("repository") == repository
                 and r.get("status") == "open"), None)


def register(cli: Cli, reviewer: Cli | None, image: DemoImage, url: str,
             say: Callable[[str], None]) -> None:
    """Make ``image`` active with its source: submitted for review (the automated checks run at
    once) and approved by ``reviewer``; without a reviewer, registered by a release engineer
    (``strata image add``, recorded as a registration)."""
    try:
        status = cli.json("image", "show", image.repository).get("status")
    except DemoError:
        status = None
    if status == "active":
        return
    if reviewer is None:
        if status is None:
            cli.json("image", "add", image.repository, "--source-url", url,
                     "--source-branch", NAMESPACE, "--summary", image.summary)
        else:
            cli.json("image", "set", image.repository, "--status", "active")
        say(f"{image.repository}: registered by a release engineer (no reviewer given)")
        return
    request = _open_review(cli, image.repository) if status == "in-review" else None
    if request is None:
        request = cli.json("image", "submit", image.repository, "--git", url,
                           "--branch", NAMESPACE)
    checks = request.get("checks") or []
    failed = [c.get("name") for c in checks if c.get("ok") is not True]
    if failed:
        raise DemoError(f"review {request['id']} of {image.repository}: checks failed: "
                        f"{', '.join(map(str, failed))} (strata review show {request['id']})")
    say(f"{image.repository}: submitted for review (request {request['id']}), "
        f"{len(checks)} automated checks passed")
    reviewer.json("review", "approve", str(request["id"]), "--comment",
                  "strata demo: looks good")
    say(f"{image.repository}: review {request['id']} approved by "
        f"{reviewer.env.get('STRATA_USER', '?')}; the image is active")
    # The summary the catalog, `strata search` and `podman search` show.
    cli.json("image", "set", image.repository, "--summary", image.summary)


def tell(cli: Cli, work: Path, say: Callable[[str], None], *, timeout: float = 120.0,
         reviewer: Cli | None = None) -> None:
    """Tell the story; ``say`` gets one line per step."""
    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    namespaces = {n["name"] for n in cli.json("namespace", "list")["namespaces"]}
    if NAMESPACE in namespaces:
        say(f"namespace {NAMESPACE}: already there")
    else:
        cli.json("namespace", "add", NAMESPACE, "--dist-tag", DIST_TAG)
        say(f"namespace {NAMESPACE}: added (dist tag {DIST_TAG}, a scheduled release every "
            "14 days)")

    # 1. the base, released on the schedule
    version = busybox_version()
    if _released_tags(cli, BASE, BASE_VERSION):
        say(f"base {BASE}:{BASE_VERSION}: already released")
    else:
        data = cli.json("base", "import", str(base_rootfs(work, "1", version)), "--name", BASE,
                        "--version", BASE_VERSION, "--namespace", NAMESPACE)
        say(f"base {BASE}:{BASE_VERSION}: imported {data['nvr']} from Debian's busybox-static "
            f"{version} ({data['digest'][:19]})")
        published = cli.json("release", "publish", "--namespace", NAMESPACE)
        say(f"release {published['name']} (scheduled, published now): {BASE}:{BASE_VERSION} "
            f"-> {data['nvr']}")

    # 2. three images from git, registered and built on the server
    repos = {i.name: source_repo(work, i) for i in IMAGES}
    todo = [i for i in IMAGES if not _released_tags(cli, i.repository, i.version)]
    for image in IMAGES:
        if image not in todo:
            say(f"{image.repository}:{image.version}: already released")
    if todo:
        def build(image: DemoImage) -> tuple[DemoImage, dict[str, Any]]:
            register(cli, reviewer, image, f"file://{repos[image.name]}", say)
            job: dict[str, Any] = cli.json("build", image.repository, "--reason",
                                           "strata demo: first build")
            return image, job

        with ThreadPoolExecutor(len(todo)) as pool:
            results = list(pool.map(build, todo))
        for image, job in results:
            if job["state"] != "succeeded":
                raise DemoError(f"build {job['id']} of {image.repository} {job['state']}: "
                                f"{job.get('error')} (strata build logs {job['id']})")
            say(f"{image.repository}: source file://{repos[image.name]} ({NAMESPACE} "
                f"{job['source_commit'][:12]}), built {job['result_nvr']} on "
                f"{job['base_repository']}:{job['base_tag']} (build {job['id']})")
        published = cli.json("release", "publish", "--namespace", NAMESPACE)
        say(f"release {published['name']} (scheduled, published now): "
            + ", ".join(f"{i.name} {i.version}" for i in todo))

    # 3. a base update released out of band: the rebuild loop rebuilds all three
    releases = _releases(cli)
    if BASE_UPDATE in releases:
        say(f"base update: already released ({BASE_UPDATE})")
    else:
        fixed = f"{version}+demo1"
        data = cli.json("base", "import", str(base_rootfs(work, "2", fixed)), "--name", BASE,
                        "--version", BASE_VERSION, "--namespace", NAMESPACE)
        say(f"base update: imported {data['nvr']} (busybox-static {version} -> {fixed}, "
            "standing in for a security fix)")
        cli.json("release", "oob", f"{BASE}@{data['digest']}", "--name", BASE_UPDATE,
                 "--advisory", ADVISORY, "--reason", "busybox security update")
        say(f"release {BASE_UPDATE} (out of band, {ADVISORY}): {BASE}:{BASE_VERSION} -> "
            f"{data['nvr']}; the rebuild loop queues every image built on it")
    base_digest = _released_tags(cli, BASE, BASE_VERSION)[-1]["new_digest"]

    if REBUILDS in releases:
        say(f"rebuilds: already released ({REBUILDS})")
    else:
        jobs = _wait_rebuilds(cli, base_digest, timeout)
        for repository, job in sorted(jobs.items()):
            if job["state"] != "succeeded":
                raise DemoError(f"rebuild {job['id']} of {repository} {job['state']}: "
                                f"{job.get('error')} (strata build logs {job['id']})")
            say(f"{repository}: rebuilt {job['result_nvr']} on the new base by "
                f"{job['requested_by']} (build {job['id']})")
        refs = [f"{r}@{jobs[r]['result_digest']}" for r in sorted(jobs)]
        cli.json("release", "oob", *refs, "--name", REBUILDS, "--advisory", ADVISORY,
                 "--reason", "rebuilds of every image on the busybox security update")
        say(f"release {REBUILDS} (out of band, {ADVISORY}): "
            + ", ".join(jobs[r]["result_nvr"] for r in sorted(jobs)))
    say(f"story told in {time.monotonic() - started:.0f}s")


def how_to_look(url: str, strata: str) -> Sequence[str]:
    host = url.split("://", 1)[-1].rstrip("/")
    return (
        f"  pull:     podman pull --tls-verify=false {host}/f25/cockpit:130",
        f"            podman run --rm --tls-verify=false {host}/f25/cockpit:130",
        f"            skopeo inspect --tls-verify=false docker://{host}/f25/toolchain:latest",
        f"  history:  {strata} history f25/cockpit:130 --url {url}",
        f"  releases: {strata} release list --url {url}",
        f"            {strata} release show {REBUILDS} --url {url}",
        f"            {strata} build list --url {url}",
        f"  catalog:  {url}/v2/_catalog",
        f"  JSON API: {url}/api/v1/releases  (and {url}/api/v1/namespaces)",
    )
