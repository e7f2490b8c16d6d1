#!/usr/bin/env python3
"""The rebuild cascade after one base release against ``buildah build`` + ``buildah push``.

Run as root from the project's venv:  .venv/bin/python bench/cascade_bench.py [--quick]

One ``strata serve`` (auth on, the test harness's admin, ``--source-allow file://``, its
default ``--build-concurrency``) and one CNCF distribution (``docker-registry``, as
``bench/servers.py`` starts it) run on loopback.  The bench creates a namespace, imports a
busybox base (``casc-base:1``) and releases it, then gives N images (20; 5 with ``--quick``)
a git repository each (a distinct Containerfile with two COPY and one or two RUN steps, a
help file and a few data files), registers them with their source, builds them all on the
server (build jobs) and releases them.  That is the state the cascade starts from.

One timed round:

* **strata**: a new base version is imported (untimed) and released out of band
  (``strata release oob``); the time is from the release (its transaction, which queues the
  rebuild jobs: their ``created_at``) until the last of the N rebuild jobs has succeeded (its
  candidate registered: ``finished_at``), both by the server's clock.  The bench sees them
  done by polling ``GET /api/v1/builds`` every 0.2 s, and also prints the time from starting
  the ``strata release oob`` command (its CLI start-up included) to seeing them all;
* **buildah**: the same N Containerfiles (``FROM`` pointed at the new base on the strata
  server), one after another: ``buildah pull`` of the base once, then for each image
  ``buildah build --isolation chroot --timestamp 0 --no-cache`` and ``buildah push`` to the
  distribution instance (overlay storage in a private graph root).

``--runs`` rounds (a new base each; strata first, since its base release is what moves the
tag buildah builds from); the medians and the ratio (buildah / strata) are printed with the
target (>= 3x), the load average before and after, and written to
``bench/results/cascade-latest.json``.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "build"))
sys.path.insert(0, str(ROOT / "bench"))

from build_support import make_rootfs  # noqa: E402
from servers import Server, distribution_server  # noqa: E402

from support.clients import Containers, require_tool  # noqa: E402
from support.server import StrataServer, strata_command  # noqa: E402

TARGET = 3.0
NAMESPACE = "casc"
DIST_TAG = "cascdocker"
BASE = "casc-base"
BASE_VERSION = "1"
GIT_ENV = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com",
           "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z",
           "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z"}


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def run(cmd: list[str], env: dict[str, str], cwd: Path | None = None) -> str:
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, check=False,
                          stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}"
                         f"\n{proc.stderr[-3000:]}")
    return proc.stdout


def base_tarball(dest: Path, round_no: int) -> Path:
    """The busybox root filesystem, with a file naming the round (a new base digest)."""
    make_rootfs(dest)
    root = dest / "rootfs"
    (root / "etc" / "os-release").write_text(f'NAME="cascade bench"\nBUILD_ID={round_no}\n')
    tarball = dest / "rootfs-round.tar.gz"
    with tarfile.open(tarball, "w:gz") as tf:
        tf.add(root, arcname=".")
    return tarball


def containerfile(index: int, base: str) -> str:
    name = f"app-{index:02d}"
    steps = [f'RUN mkdir -p /var/lib/{name} && echo "{name}" > /var/lib/{name}/id']
    if index % 2:
        steps.append(f"RUN for n in $(seq 1 {20 + index}); do echo \"$n\" > "
                     f"/var/lib/{name}/f$n; done")
    return (f"FROM {base}\n"
            f'LABEL name="{NAMESPACE}/{name}" version="1.{index}" '
            f'summary="cascade bench image {index}" '
            f'maintainer="bench <bench@example.com>" usage="podman run {name}"\n'
            "COPY help.md /help.md\n"
            f"COPY app/ /opt/{name}/\n"
            + "\n".join(steps) + "\n"
            f"ENV APP={name}\n"
            'CMD ["/bin/sh"]\n')


def source_repo(root: Path, index: int) -> Path:
    """The image's git repository (branch ``cascade``), created once."""
    repo = root / f"app-{index:02d}"
    (repo / "app").mkdir(parents=True)
    (repo / "Containerfile").write_text(containerfile(index, f"{BASE}:{BASE_VERSION}"))
    (repo / "help.md").write_text(f"# app-{index:02d}\n\nA cascade bench image.\n")
    rng = random.Random(index)
    for n in range(8):  # ~8-40 KiB of data files per image
        (repo / "app" / f"data{n}.txt").write_text(
            "".join(rng.choice("abcdefghij \n") for _ in range(rng.randint(1024, 5120))))
    env = {**os.environ, **GIT_ENV}
    for args in (["init", "-q", "-b", "cascade"], ["add", "."],
                 ["commit", "-q", "-m", f"app-{index:02d}"]):
        run(["git", "-C", str(repo), *args], env)
    return repo


class Api:
    """The strata JSON API over plain HTTP, as the harness's admin (Basic)."""

    def __init__(self, server: StrataServer) -> None:
        creds = f"{server.admin_user}:{server.admin_password}".encode()
        self.url = server.url
        self.headers = {"Authorization": "Basic " + base64.b64encode(creds).decode(),
                        "Content-Type": "application/json"}

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers=self.headers)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(req, timeout=60) as resp:
            return json.loads(resp.read())

    def jobs(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.call(
            "GET", f"/api/v1/builds?namespace={NAMESPACE}&limit=1000")["builds"]
        return found

    def wait(self, ids: set[int] | None, count: int, kind: str, after: int,
             timeout: float) -> list[dict[str, Any]]:
        """The *count* jobs of *kind* with ids above *after*, once all have ended."""
        deadline = time.monotonic() + timeout
        while True:
            jobs = [j for j in self.jobs() if j["id"] > after and j["kind"] == kind
                    and (ids is None or j["id"] in ids)]
            if len(jobs) >= count and all(j["state"] not in ("queued", "running")
                                          for j in jobs):
                bad = [j for j in jobs if j["state"] != "succeeded"]
                if bad:
                    raise SystemExit(f"build jobs did not succeed: {bad}")
                return jobs
            if time.monotonic() > deadline:
                raise SystemExit(f"{count} {kind} jobs not done in {timeout:.0f}s: "
                                 + ", ".join(f"{j['id']} {j['state']}" for j in jobs))
            time.sleep(0.2)


class Buildah:
    def __init__(self, root: Path, strata_host: str, dist_host: str) -> None:
        self.exe = require_tool("buildah")
        self.dist_host = dist_host
        self.containers = Containers(root, strata_host)
        storage = self.containers.storage_conf
        storage.write_text(storage.read_text().replace('driver="vfs"', 'driver="overlay"'))
        self.env = dict(self.containers.env)

    def cascade(self, base: str, contexts: list[Path], tag: str) -> tuple[float, float, float]:
        """(total, build seconds, push seconds) of pulling *base* once, then building and
        pushing every context, one after another."""
        started = time.monotonic()
        run([self.exe, "pull", "--tls-verify=false", "-q", base], self.env)
        build = push = 0.0
        for ctx in contexts:
            image = f"{self.dist_host}/{NAMESPACE}/{ctx.name}:{tag}"
            t0 = time.monotonic()
            run([self.exe, "build", "--isolation", "chroot", "--timestamp", "0", "--no-cache",
                 "--pull=false", "--tls-verify=false", "-q", "-t", image, str(ctx)], self.env)
            t1 = time.monotonic()
            run([self.exe, "push", "--tls-verify=false", "-q", image], self.env)
            t2 = time.monotonic()
            build, push = build + t1 - t0, push + t2 - t1
        total = time.monotonic() - started
        for ctx in contexts:
            subprocess.run([self.exe, "rmi", "-f", f"{self.dist_host}/{NAMESPACE}/{ctx.name}:"
                            f"{tag}"], env=self.env, capture_output=True, check=False)
        return total, build, push

    def cleanup(self) -> None:
        subprocess.run([self.exe, "rmi", "--all", "--force"], env=self.env,
                       capture_output=True, check=False)
        self.containers.cleanup()


def buildah_contexts(repos: list[Path], dest: Path, base: str) -> list[Path]:
    """Copies of the sources whose ``FROM`` names *base* fully (host and port)."""
    out = []
    for repo in repos:
        ctx = dest / repo.name
        shutil.copytree(repo, ctx, ignore=shutil.ignore_patterns(".git"))
        text = (ctx / "Containerfile").read_text()
        (ctx / "Containerfile").write_text(text.replace(f"FROM {BASE}:{BASE_VERSION}",
                                                        f"FROM {base}", 1))
        out.append(ctx)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=None,
                        help="layered images on the base (default 20, 5 with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="5 images and 1 round (while the machine is shared)")
    parser.add_argument("--runs", type=int, default=None,
                        help="timed rounds (median; default 3, 1 with --quick)")
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--profile", type=Path, default=None,
                        help="record the server during the (first) strata cascade with "
                             "py-spy (--py-spy) into this file (collapsed stacks)")
    parser.add_argument("--py-spy", default="py-spy", help="the py-spy executable")
    parser.add_argument("--serve-arg", action="append", default=[],
                        help="extra argument of strata serve (repeatable), e.g. "
                             "--serve-arg=--build-concurrency=2")
    args = parser.parse_args()
    images = args.images or (5 if args.quick else 20)
    runs = args.runs or (1 if args.quick else 3)
    if os.geteuid() != 0:
        raise SystemExit("run as root: RUN steps need namespaces and overlay mounts")
    work = Path(tempfile.mkdtemp(prefix="strata-cascade-bench.", dir=args.workdir))
    loads = {"start": load()}
    print(f"load average at start: {loads['start']}", flush=True)
    server = StrataServer(work / "server", "--source-allow", "file://", *args.serve_arg)
    dist: Server | None = None
    buildah: Buildah | None = None
    try:
        server.start()
        dist = distribution_server(work / "dist")
        dist.start()
        env = {**os.environ, "STRATA_URL": server.url, "STRATA_USER": server.admin_user,
               "STRATA_PASSWORD": server.admin_password, "TMPDIR": str(work),
               "STRATA_BUILD_CACHE": str(work / "cli-cache")}
        strata = strata_command()
        api = Api(server)
        run([*strata, "namespace", "add", NAMESPACE, "--dist-tag", DIST_TAG], env)
        release_base(strata, env, work, 0)
        repos = [source_repo(work / "src", i) for i in range(1, images + 1)]
        for repo in repos:
            run([*strata, "image", "add", f"{NAMESPACE}/{repo.name}", "--source-url",
                 f"file://{repo}", "--source-branch", "cascade", "--reason", "benchmark"], env)
        # The starting point: every image built on the server (untimed) and released.
        started = time.monotonic()
        last = max((j["id"] for j in api.jobs()), default=0)
        ids = {api.call("POST", "/api/v1/builds", {"repository": f"{NAMESPACE}/{r.name}"})["id"]
               for r in repos}
        first = api.wait(ids, images, "build", last, args.timeout)
        print(f"{images} first builds on the server: {time.monotonic() - started:.1f} s",
              flush=True)
        run([*strata, "release", "oob", *[f"{j['repository']}@{j['result_digest']}"
                                         for j in first],
             "--advisory", "CASC-0", "--reason", "the cascade's starting point"], env)
        buildah = Buildah(work / "buildah", server.host_port, f"127.0.0.1:{dist.port}")
        base_ref = f"{server.host_port}/{BASE}:{BASE_VERSION}"
        ctxs = buildah_contexts(repos, work / "buildah-ctx", base_ref)
        # untimed warm-up of buildah: the old base in its storage, one image in distribution
        buildah.cascade(base_ref, ctxs[:1], "warm")
        samples: dict[str, list[float]] = {"strata": [], "strata_with_command": [],
                                           "buildah": [], "buildah_build": [],
                                           "buildah_push": []}
        for round_no in range(1, runs + 1):
            # strata goes first: the base release that starts its cascade is also what
            # moves the tag buildah builds FROM (released earlier, it would queue the
            # rebuilds while buildah runs)
            digest = import_base(strata, env, work, round_no)
            spy = None
            if args.profile is not None and round_no == 1 and server.pid is not None:
                spy = subprocess.Popen([args.py_spy, "record", "--pid", str(server.pid),
                                        "--subprocesses", "--rate", "100",
                                        "--format", "raw", "-o", str(args.profile)],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(1.0)
            took, seen = strata_cascade(strata, env, api, digest, images, round_no,
                                        args.timeout)
            if spy is not None:
                spy.send_signal(2)
                spy.wait(timeout=60)
            samples["strata"].append(took)
            samples["strata_with_command"].append(seen)
            print(f"round {round_no} strata  {took:7.2f} s  ({images} rebuilds from the "
                  f"release; {seen:.2f} s from starting the release command; load {load()})",
                  flush=True)
            total, build, push = buildah.cascade(base_ref, ctxs, f"r{round_no}")
            samples["buildah"].append(total)
            samples["buildah_build"].append(build)
            samples["buildah_push"].append(push)
            print(f"round {round_no} buildah {total:7.2f} s  (build {build:.2f}, push "
                  f"{push:.2f}; load {load()})", flush=True)
        loads["end"] = load()
        report(samples, images, runs, loads)
    finally:
        if buildah is not None:
            buildah.cleanup()
        if dist is not None:
            dist.stop()
        server.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def import_base(strata: list[str], env: dict[str, str], work: Path, round_no: int) -> str:
    data = json.loads(run([*strata, "base", "import", str(base_tarball(
        work / f"base-{round_no}", round_no)), "--name", BASE, "--version", BASE_VERSION,
        "--namespace", NAMESPACE, "--json"], env))
    return str(data["digest"])


def release(strata: list[str], env: dict[str, str], ref: str, advisory: str) -> None:
    run([*strata, "release", "oob", ref, "--advisory", advisory, "--reason", "cascade bench"],
        env)


def release_base(strata: list[str], env: dict[str, str], work: Path, round_no: int) -> None:
    release(strata, env, f"{BASE}@{import_base(strata, env, work, round_no)}",
            f"CASC-B{round_no}")


def strata_cascade(strata: list[str], env: dict[str, str], api: Api, digest: str,
                   images: int, round_no: int, timeout: float) -> tuple[float, float]:
    """Release the new base and wait until its rebuilds have all succeeded: (seconds from
    the release's transaction, which queued the rebuilds, to the last candidate registered,
    by the server's clock; seconds from starting the release command to seeing them all)."""
    last = max((j["id"] for j in api.jobs()), default=0)
    started, wall = time.monotonic(), time.time()
    release(strata, env, f"{BASE}@{digest}", f"CASC-B{round_no}")
    command = time.monotonic() - started
    jobs = api.wait(None, images, "rebuild", last, timeout)
    seen = time.monotonic() - started
    queued = min(j["created_at"] for j in jobs)
    span = max(j["finished_at"] for j in jobs) - queued
    runs = sorted(j["finished_at"] - j["started_at"] for j in jobs)
    print(f"  release command {command:.2f} s (the release committed {queued - wall:.2f} s "
          f"after it began); first job started {min(j['started_at'] for j in jobs) - queued:.2f}"
          f" s after the release; job run times median {statistics.median(runs):.2f} s, max "
          f"{runs[-1]:.2f} s", flush=True)
    return span, seen


def report(samples: dict[str, list[float]], images: int, runs: int,
           loads: dict[str, str]) -> None:
    strata_s = statistics.median(samples["strata"])
    buildah_s = statistics.median(samples["buildah"])
    ratio = buildah_s / strata_s
    verdict = "ok" if ratio >= TARGET else "MISSED"
    print(f"\nmedian of {runs} (seconds; {images} images)\n")
    print("| workload | strata rebuild cascade | buildah build + push, one after another "
          "| ratio | target |")
    print("|---|---|---|---|---|")
    print(f"| {images} images after a base release | {strata_s:.2f} | {buildah_s:.2f} "
          f"(build {statistics.median(samples['buildah_build']):.2f}, push "
          f"{statistics.median(samples['buildah_push']):.2f}) | {ratio:.2f}x | "
          f">= {TARGET}x {verdict} |")
    with_command = statistics.median(samples["strata_with_command"])
    print(f"\nfrom starting `strata release oob` (CLI start-up included) instead of the "
          f"release: {with_command:.2f} s, {buildah_s / with_command:.2f}x")
    print(f"\nload average: start {loads['start']}, end {loads['end']}")
    out = ROOT / "bench" / "results" / "cascade-latest.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"machine": platform.platform(), "cpus": os.cpu_count(),
                               "images": images, "runs": runs, "load": loads,
                               "strata_s": strata_s, "buildah_s": buildah_s, "ratio": ratio,
                               "target": TARGET, "samples": samples}, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
