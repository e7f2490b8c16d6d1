#!/usr/bin/env python3
"""``strata build`` (with push) against ``buildah build`` + ``buildah push``.

Run as root from the project's venv:  .venv/bin/python bench/build_bench.py [--runs 5]

One ``strata serve`` (auth on, the test harness's admin) serves both builders.  A busybox base
image is imported with ``strata base import``; two Containerfiles are built on it:

* COPY-heavy: ``COPY files/ /data/`` of ~300 MiB of real files from /usr/lib and /usr/share
  (plus a file naming the round, so every round uploads a new layer);
* RUN-heavy: five RUN steps, four writing 1,000 small files each, one a 50 MiB file.

buildah runs as the issue measured it: ``buildah build --isolation chroot --timestamp 0
--no-cache`` then ``buildah push`` (overlay storage in a private graph root, its own
containers.conf/registries.conf/auth file); strata runs as a user would, ``strata build DIR
--rebuild`` (a fresh process: CLI start-up included) with ``SOURCE_DATE_EPOCH=0``.  One
untimed warm-up of each pulls the base image into each builder's cache; then ``--runs``
timed rounds alternate the order.  Prints the medians, the ratios (buildah / strata) and the
targets (>= 3x COPY-heavy, >= 1.5x RUN-heavy), and writes ``bench/results/build-latest.json``.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "build"))

from build_support import make_rootfs  # noqa: E402

from support.clients import Containers, require_tool  # noqa: E402
from support.server import StrataServer, strata_command  # noqa: E402

TARGETS = {"copy-heavy": 3.0, "run-heavy": 1.5}
LABELS = ('LABEL name="bench/{name}" version="1" summary="bench" '
          'maintainer="bench <b@example.com>" usage="none"')


def copy_real_files(dest: Path, budget: int) -> tuple[int, int]:
    """Copy regular files from /usr/lib and /usr/share (sorted walk) until *budget* bytes."""
    total = count = 0
    for top in ("/usr/lib", "/usr/share"):
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames.sort()
            for name in sorted(filenames):
                src = Path(dirpath, name)
                try:
                    st = src.lstat()
                except OSError:
                    continue
                if not src.is_file() or src.is_symlink() or st.st_size > 32 << 20:
                    continue
                if total + st.st_size > budget:
                    return total, count
                target = dest / src.relative_to("/usr")
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    shutil.copy2(src, target)
                except OSError:
                    continue
                total += st.st_size
                count += 1
    return total, count


def contexts(work: Path, base: str, copy_mib: int) -> dict[str, Path]:
    copy_ctx = work / "copy-heavy"
    if copy_mib:
        size, count = copy_real_files(copy_ctx / "files", copy_mib << 20)
        print(f"COPY-heavy context: {count} files, {size / (1 << 20):.0f} MiB", flush=True)
    else:  # --only run-heavy
        (copy_ctx / "files").mkdir(parents=True)
    (copy_ctx / "Containerfile").write_text(
        f"FROM {base}\n{LABELS.format(name='copyheavy')}\nCOPY files/ /data/\n")
    run_ctx = work / "run-heavy"
    run_ctx.mkdir()
    steps = [f"RUN mkdir -p /d{i} && for n in $(seq 1 1000); do echo \"file $n of step {i}\" "
             f"> /d{i}/f$n; done" for i in range(1, 5)]
    steps.append("RUN head -c 52428800 /dev/urandom > /big")
    (run_ctx / "Containerfile").write_text(
        f"FROM {base}\n{LABELS.format(name='runheavy')}\n" + "\n".join(steps) + "\n")
    return {"copy-heavy": copy_ctx, "run-heavy": run_ctx}


def children_cpu() -> float:
    """CPU seconds (user + system) of the processes this one has reaped: less disturbed by
    other load than the wall time, so beside it in the table."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(cmd: list[str], env: dict[str, str]) -> float:
    started = time.monotonic()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False,
                          stdin=subprocess.DEVNULL)
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n"
                         f"{proc.stderr[-3000:]}")
    return elapsed


class Buildah:
    def __init__(self, root: Path, server: StrataServer) -> None:
        self.exe = require_tool("buildah")
        self.host = server.host_port
        self.containers = Containers(root, server.host_port,
                                     (server.admin_user, server.admin_password))
        storage = self.containers.storage_conf
        storage.write_text(storage.read_text().replace('driver="vfs"', 'driver="overlay"'))
        self.env = dict(self.containers.env)

    def build_and_push(self, name: str, ctx: Path, tag: str) -> tuple[float, float]:
        image = f"{self.host}/buildah-{name}:{tag}"
        built = timed([self.exe, "build", "--isolation", "chroot", "--timestamp", "0",
                       "--no-cache", "--tls-verify=false", "-q", "-t", image, str(ctx)],
                      self.env)
        pushed = timed([self.exe, "push", "--tls-verify=false", "-q", image], self.env)
        subprocess.run([self.exe, "rmi", "-f", image], env=self.env, capture_output=True,
                       check=False)
        return built, pushed

    def cleanup(self) -> None:
        subprocess.run([self.exe, "rmi", "--all", "--force"], env=self.env,
                       capture_output=True, check=False)
        self.containers.cleanup()


def precompile(package: Path | None = None) -> None:
    """Byte-compile strata's own modules, as ``pip install`` of a wheel does.  The venv's
    editable install has no ``.pyc`` files, and with ``PYTHONDONTWRITEBYTECODE=1`` in the
    environment (this machine's) every ``strata`` process would compile its ~150 modules
    from source again (~0.25 s of CPU per command, which no installed strata pays)."""
    if package is None:
        import strata

        package = Path(strata.__file__).parent
    if not compileall.compile_dir(package, quiet=1, workers=1):
        raise SystemExit(f"cannot byte-compile {package}")
    print(f"byte-compiled {package} (as an installed strata is)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="timed rounds (median; default 3)")
    parser.add_argument("--copy-mib", type=int, default=300, help="COPY-heavy context size")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--only", choices=sorted(TARGETS), default=None)
    parser.add_argument("--baseline", type=Path, default=None, metavar="SRC",
                        help="also time the strata of another tree (its src/ directory, "
                             "e.g. from git archive) with this venv, interleaved")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: RUN steps need namespaces and overlay mounts")
    work = Path(tempfile.mkdtemp(prefix="strata-build-bench.", dir=args.workdir))
    server = StrataServer(work / "server").start()
    buildah: Buildah | None = None
    try:
        env = {**os.environ, "STRATA_URL": server.url, "STRATA_USER": server.admin_user,
               "STRATA_PASSWORD": server.admin_password, "SOURCE_DATE_EPOCH": "0",
               "STRATA_BUILD_CACHE": str(work / "strata-cache"), "TMPDIR": str(work)}
        strata = strata_command()
        precompile()
        contenders = ["strata", "buildah"]
        base_env = env
        if args.baseline is not None:  # another tree's strata, same venv: A/B in one run
            precompile(args.baseline / "strata")
            base_env = {**env, "PYTHONPATH": str(args.baseline)}
            contenders.append("baseline")
        timed([*strata, "namespace", "add", "bench", "--dist-tag", "benchdocker"], env)
        for image in ("copyheavy", "runheavy"):  # only approved images take candidates
            timed([*strata, "image", "add", f"bench/{image}", "--reason", "benchmark"], env)
        rootfs = make_rootfs(work / "base")
        imported = json.loads(subprocess.run(
            [*strata, "base", "import", str(rootfs), "--name", "busybox-bench", "--version",
             "1", "--namespace", "bench", "--json"], env=env, capture_output=True, text=True,
            check=True).stdout)
        # a base gets its tags (busybox-bench:1) from the release that publishes it
        timed([*strata, "release", "oob", f"busybox-bench@{imported['digest']}", "--advisory",
               "BENCH-1", "--reason", "the bench's base"], env)
        base = f"{server.host_port}/busybox-bench:1"
        ctxs = contexts(work / "ctx", base, 0 if args.only == "run-heavy" else args.copy_mib)
        names = [args.only] if args.only else list(TARGETS)
        buildah = Buildah(work / "buildah", server)
        samples: dict[str, dict[str, list[float]]] = {
            n: {who: [] for who in ("strata", "buildah", "buildah_build", "buildah_push",
                                    "baseline", "strata_cpu", "buildah_cpu", "baseline_cpu")}
            for n in names}
        for round_no in range(args.runs + 1):  # round 0 warms both caches, untimed
            # New content every round, so both builders really upload their COPY layer.
            (ctxs["copy-heavy"] / "files" / "ROUND").write_text(f"{round_no}\n")
            for name in names:
                shift = round_no % len(contenders)  # each goes first in turn
                order = contenders[shift:] + contenders[:shift]
                for who in order:
                    cpu_before = children_cpu()
                    if who in ("strata", "baseline"):
                        command = [*strata, "build", str(ctxs[name]), "--json", "-q", "--rebuild"]
                        took = timed(command, env if who == "strata" else base_env)
                        parts = (took, 0.0)
                    else:
                        parts = buildah.build_and_push(name, ctxs[name], f"r{round_no}")
                        took = sum(parts)
                    label = "warm-up" if round_no == 0 else f"round {round_no}"
                    print(f"{label:8} {name:10} {who:7} {took:6.2f} s", flush=True)
                    if round_no:
                        samples[name][who].append(took)
                        samples[name][f"{who}_cpu"].append(children_cpu() - cpu_before)
                        if who == "buildah":
                            samples[name]["buildah_build"].append(parts[0])
                            samples[name]["buildah_push"].append(parts[1])
        report(samples, args)
    finally:
        if buildah is not None:
            buildah.cleanup()
        server.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def report(samples: dict[str, dict[str, list[float]]], args: argparse.Namespace) -> None:
    print(f"\nmedian of {args.runs} (seconds; buildah = build + push)\n")
    print("| workload | strata build (+push) | buildah build + push | ratio | target |")
    print("|---|---|---|---|---|")
    results: dict[str, Any] = {}
    for name, data in samples.items():
        strata_s = statistics.median(data["strata"])
        buildah_s = statistics.median(data["buildah"])
        ratio = buildah_s / strata_s
        target = TARGETS[name]
        verdict = "ok" if ratio >= target else "MISSED"
        print(f"| {name} | {strata_s:.2f} | {buildah_s:.2f} "
              f"(build {statistics.median(data['buildah_build']):.2f}) | {ratio:.2f}x | "
              f">= {target}x {verdict} |")
        results[name] = {"strata_s": strata_s, "buildah_s": buildah_s, "ratio": ratio,
                         "target": target, "samples": data}
        print(f"| {name}, CPU s (user+sys of the command's processes) | "
              f"{statistics.median(data['strata_cpu']):.2f} | "
              f"{statistics.median(data['buildah_cpu']):.2f} | | |")
        if data["baseline"]:
            base_s = statistics.median(data["baseline"])
            print(f"| {name}, baseline strata ({args.baseline}) | {base_s:.2f} | "
                  f"{buildah_s:.2f} | {buildah_s / base_s:.2f}x | |")
            print(f"| {name}, baseline strata CPU s | "
                  f"{statistics.median(data['baseline_cpu']):.2f} | | | |")
            results[name]["baseline_s"] = base_s
    with open("/proc/loadavg") as fh:
        print(f"\nload average at the end: {' '.join(fh.read().split()[:3])}")
    out = ROOT / "bench" / "results" / "build-latest.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"machine": platform.platform(), "cpus": os.cpu_count(),
                               "runs": args.runs, "copy_mib": args.copy_mib,
                               "results": results}, indent=2) + "\n")
    print(f"\nwrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
