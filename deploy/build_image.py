"""Build the container image of strata itself with strata's own builder (``make image``).

Steps, each with a real tool:

1. A Debian 12 root filesystem with python3 (``debootstrap --variant=minbase
   --include=python3,python3-venv bookworm``: Debian 12's python is 3.11, the interpreter the
   wheels below are built for), kept as a tarball under ``$STRATA_IMAGE_CACHE`` (default
   ``/var/cache/strata-image``) as ``bookworm-python3-YYYY-MM-DD.tar`` and reused for
   :data:`MAX_AGE_DAYS` days. Without the Debian mirror an older tarball is used (with a
   warning): the build then needs no network at all.
2. The wheels of strata (from a copy of the checkout's ``src/``) and its dependencies: ``pip
   wheel`` of the interpreter that runs this script (its index settings: offline with a local
   wheel mirror), with ``SOURCE_DATE_EPOCH`` the commit time.
3. A throwaway ``strata serve`` on a free loopback port and data dir in a temporary directory;
   ``strata namespace add strata``, ``strata image add strata/strata``, ``strata base import``
   of the tarball as ``strata/debian`` version 12, ``strata release oob`` (so ``FROM
   strata/debian:12`` resolves), then ``strata build`` of a context holding
   ``deploy/Containerfile``, ``deploy/help.md`` and ``wheels/`` (RUN without network: pip
   installs from ``wheels/`` only). RUN steps need root (the build jail).
4. ``skopeo copy`` of the built image from the throwaway server to ``--output`` (an OCI archive,
   ``podman load -i``) or to ``--push REF`` (a registry; the caller's ``skopeo login``).

Prints one JSON object: output/pushed reference, the image's digest, NVR, base digest, source
commit and the seconds each step took. Run as ``python deploy/build_image.py --help``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fcntl
import importlib.metadata
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEPLOY = Path(__file__).resolve().parent
MIRROR = "http://deb.debian.org/debian"
SUITE = "bookworm"
PACKAGES = ("python3", "python3-venv")
MAX_AGE_DAYS = 7
NAMESPACE = "strata"
DIST_TAG = "deb12"
BASE_NAME = "strata/debian"
BASE_VERSION = "12"
IMAGE = "strata/strata"
DEBOOTSTRAP_TIMEOUT = 1200


class ImageBuildError(RuntimeError):
    """A step failed; the message names it and carries the tool's output."""


def say(message: str) -> None:
    print(f"make image: {message}", file=sys.stderr, flush=True)


def run(cmd: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float = 3600,
        cwd: Path | None = None) -> str:
    """Run a step; its stdout, or :class:`ImageBuildError` with its output."""
    proc = subprocess.run(list(cmd), env=dict(env) if env is not None else None,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout, check=False, cwd=cwd)
    if proc.returncode != 0:
        raise ImageBuildError(f"{' '.join(cmd)} failed (exit {proc.returncode}):\n"
                              f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc.stdout


def tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ImageBuildError(f"{name} is not on PATH: install the Debian package '{package}'")
    return path


# --- 1. the base root filesystem --------------------------------------------------------------

def _cached(cache: Path) -> list[tuple[dt.date, Path]]:
    found = []
    for entry in cache.glob(f"{SUITE}-python3-*.tar"):
        try:
            day = dt.date.fromisoformat(entry.name.removeprefix(f"{SUITE}-python3-")
                                        .removesuffix(".tar"))
        except ValueError:
            continue
        found.append((day, entry))
    return sorted(found, reverse=True)


def base_rootfs(cache: Path, *, refresh: bool = False, mirror: str = MIRROR) -> Path:
    """The cached (or freshly made) root filesystem tarball: a fresh cached one, else a new
    one from *mirror*, else (debootstrap failed: no mirror) the newest cached one."""
    cache.mkdir(parents=True, exist_ok=True)
    today = dt.date.today()

    def fresh() -> Path | None:
        cached = _cached(cache)
        if cached and not refresh and (today - cached[0][0]).days < MAX_AGE_DAYS:
            return cached[0][1]
        return None

    found = fresh()
    if found is not None:
        return found
    with open(cache / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one debootstrap at a time; the others reuse it
        found = fresh()
        if found is not None:
            return found
        try:
            return _debootstrap(cache, today, mirror)
        except ImageBuildError as exc:
            cached = _cached(cache)
            if not cached:
                raise
            first = str(exc).splitlines()[0] if str(exc) else "?"
            say(f"debootstrap failed ({first}), using the older {cached[0][1]}")
            return cached[0][1]


def _debootstrap(cache: Path, today: dt.date, mirror: str) -> Path:
    debootstrap = tool("debootstrap", "debootstrap")
    if os.geteuid() != 0:
        raise ImageBuildError("debootstrap needs root")
    work = Path(tempfile.mkdtemp(prefix=".rootfs-", dir=cache))
    root = work / "rootfs"
    try:
        say(f"debootstrap --variant=minbase {SUITE} (a few minutes; cached in {cache})")
        run([debootstrap, "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE,
             str(root), mirror], timeout=DEBOOTSTRAP_TIMEOUT)
        # What an image needs no copy of: downloaded packages, package lists, the host's names.
        for pattern in ("var/cache/apt/archives/*.deb", "var/lib/apt/lists/*", "var/log/*.log",
                        "var/cache/debconf/*-old", "var/lib/dpkg/*-old"):
            for path in root.glob(pattern):
                if path.is_file():
                    path.unlink()
        for name in ("etc/hostname", "etc/resolv.conf"):
            with contextlib.suppress(FileNotFoundError):
                (root / name).unlink()
        tarball = work / "rootfs.tar"
        run(["tar", "--numeric-owner", "--xattrs", "--sort=name", "-C", str(root), "-cf",
             str(tarball), "--exclude=./dev/*", "--exclude=./proc/*", "--exclude=./sys/*",
             "--exclude=./run/*", "--exclude=./tmp/*", "."])
        final = cache / f"{SUITE}-python3-{today.isoformat()}.tar"
        tarball.rename(final)
        for _, old in _cached(cache)[2:]:  # keep the newest two
            old.unlink()
        return final
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --- 2. the wheels ------------------------------------------------------------------------------

def wheelhouse(dest: Path, source_date_epoch: int) -> list[str]:
    """strata and every dependency as wheels in *dest*; their file names.

    strata's wheel is built from a fresh copy of ``pyproject.toml``, ``README.md`` and ``src/``
    (an in-tree build would reuse a stale ``build/lib`` holding modules deleted since), with
    ``SOURCE_DATE_EPOCH`` for the wheel's zip timestamps."""
    dest.mkdir(parents=True, exist_ok=True)
    source = dest.parent / "strata-source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns(
        "__pycache__", "*.pyc", "*.egg-info"))
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check",
         str(source), "-w", str(dest)],
        env={**os.environ, "PIP_NO_INPUT": "1", "SOURCE_DATE_EPOCH": str(source_date_epoch)})
    wheels = sorted(p.name for p in dest.glob("*.whl"))
    if not any(name.startswith("strata-") for name in wheels):
        raise ImageBuildError(f"pip wheel made no strata wheel in {dest}: {wheels}")
    return wheels


# --- 3. the throwaway server and the build ----------------------------------------------------

def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def strata_exe() -> str:
    exe = Path(sys.executable).parent / "strata"
    return str(exe) if exe.exists() else tool("strata", "strata (make install)")


@contextlib.contextmanager
def throwaway_server(work: Path) -> Iterator[dict[str, str]]:
    """A ``strata serve`` on a free loopback port; yields the CLI's environment."""
    port = _free_port()
    password = secrets.token_urlsafe(24)
    url = f"http://127.0.0.1:{port}"
    log_path = work / "server.log"
    env = {**os.environ, "STRATA_ADMIN_PASSWORD": password}
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [strata_exe(), "serve", "--data", str(work / "data"), "--listen",
             f"127.0.0.1:{port}", "--workers", "1", "--build-concurrency", "0"],
            env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise ImageBuildError(f"strata serve exited ({proc.returncode}):\n"
                                      f"{log_path.read_text()[-4000:]}")
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise ImageBuildError(f"strata serve did not answer /healthz in 60 s:\n"
                                      f"{log_path.read_text()[-4000:]}")
            time.sleep(0.2)
        yield {**os.environ, "STRATA_URL": url, "STRATA_USER": "admin",
               "STRATA_PASSWORD": password}
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def strata_json(env: Mapping[str, str], *args: str) -> Any:
    return json.loads(run([strata_exe(), *args, "--json"], env=env))


def git_source() -> tuple[str | None, int]:
    """The checkout's commit and its commit time (None, 0 outside a git checkout)."""
    proc = subprocess.run(["git", "-C", str(REPO), "log", "-1", "--format=%H %ct"],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not proc.stdout.strip():
        return None, 0
    commit, when = proc.stdout.split()
    return commit, int(when)


def build(rootfs: Path, wheels: Path, work: Path, env: Mapping[str, str],
          version: str) -> dict[str, Any]:
    """Register the base, build the image; the build's JSON (nvr, digest, repository, ...)."""
    strata = strata_exe()
    run([strata, "namespace", "add", NAMESPACE, "--dist-tag", DIST_TAG], env=env)
    run([strata, "image", "add", IMAGE, "--reason", "make image",
         "--summary", "strata, built by make image"], env=env)
    base = strata_json(env, "base", "import", str(rootfs), "--name", BASE_NAME,
                       "--version", BASE_VERSION, "--namespace", NAMESPACE,
                       "--label", "summary=Debian 12 (minbase) with python3",
                       "--work-dir", str(work))
    run([strata, "release", "oob", f"{BASE_NAME}@{base['digest']}", "--advisory",
         "STRATA-IMAGE-BASE", "--reason", "the base of make image"], env=env)
    context = work / "context"
    context.mkdir()
    shutil.copy2(DEPLOY / "Containerfile", context / "Containerfile")
    shutil.copy2(DEPLOY / "help.md", context / "help.md")
    shutil.copytree(wheels, context / "wheels")
    commit, when = git_source()
    args = ["build", str(context), "--namespace", NAMESPACE, "--build-arg",
            f"VERSION={version}", "--build-arg", f"SOURCE_DATE_EPOCH={when}",
            "--source-date-epoch", str(when), "--cache-dir",
            str(work / "build-cache"), "--work-dir", str(work), "--quiet"]
    if commit is not None:
        args += ["--source-commit", commit]
    built: dict[str, Any] = strata_json(env, *args)
    built["base_digest"] = base["digest"]
    built["source_commit"] = commit
    return built


# --- 4. out of the throwaway server -------------------------------------------------------------

def export(env: Mapping[str, str], work: Path, digest: str, version: str, *,
           output: Path | None, push: str | None, dest_tls_verify: bool) -> str:
    skopeo = tool("skopeo", "skopeo")
    policy = work / "policy.json"
    policy.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
    source = f"docker://{env['STRATA_URL'].removeprefix('http://')}/{IMAGE}@{digest}"
    if push is not None:
        dest = f"docker://{push}"
        tls = [f"--dest-tls-verify={'true' if dest_tls_verify else 'false'}"]
    else:
        assert output is not None
        output.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            output.unlink()  # skopeo refuses to add to an existing archive
        dest = f"oci-archive:{output}:{IMAGE}:{version}"
        tls = []
    run([skopeo, "--policy", str(policy), "copy", "--quiet", "--src-tls-verify=false", *tls,
         source, dest], env=env)
    return dest


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=REPO / "build" / "strata-image.oci.tar",
                        help="OCI archive to write (podman load -i FILE); default %(default)s")
    parser.add_argument("--push", metavar="REF", default=None,
                        help="push to this registry reference instead (HOST/REPO:TAG)")
    parser.add_argument("--dest-tls-verify", choices=("true", "false"), default="true",
                        help="TLS verification of --push's registry")
    parser.add_argument("--cache", type=Path, default=Path(os.environ.get(
        "STRATA_IMAGE_CACHE", "/var/cache/strata-image")), help="base rootfs cache")
    parser.add_argument("--mirror", default=os.environ.get("STRATA_IMAGE_MIRROR", MIRROR),
                        help="Debian mirror for debootstrap; default %(default)s")
    parser.add_argument("--refresh-base", action="store_true",
                        help="debootstrap a new base even if a recent one is cached")
    args = parser.parse_args(argv)
    timings: dict[str, float] = {}
    try:
        if os.geteuid() != 0:
            raise ImageBuildError("RUN steps of strata build need root: run make image as root")
        started = time.monotonic()
        rootfs = base_rootfs(args.cache, refresh=args.refresh_base, mirror=args.mirror)
        timings["base"] = round(time.monotonic() - started, 1)
        version = importlib.metadata.version("strata")
        with tempfile.TemporaryDirectory(prefix="strata-image-") as tmp:
            work = Path(tmp)
            started = time.monotonic()
            wheels = wheelhouse(work / "wheels", git_source()[1])
            timings["wheels"] = round(time.monotonic() - started, 1)
            say(f"{len(wheels)} wheels; building {IMAGE} {version} on {rootfs.name}")
            with throwaway_server(work) as env:
                started = time.monotonic()
                built = build(rootfs, work / "wheels", work, env, version)
                timings["build"] = round(time.monotonic() - started, 1)
                started = time.monotonic()
                dest = export(env, work, built["digest"], version, output=args.output,
                              push=args.push, dest_tls_verify=args.dest_tls_verify == "true")
                timings["export"] = round(time.monotonic() - started, 1)
    except ImageBuildError as exc:
        print(f"make image: error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"destination": dest, "digest": built["digest"], "nvr": built.get("nvr"),
                      "base": rootfs.name, "base_digest": built["base_digest"],
                      "source_commit": built["source_commit"], "seconds": timings}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
