"""A Debian 13 (trixie) chroot with skopeo, for verifying sigstore signatures with a real
client: Debian 12's skopeo has sigstore verification switched off, Debian 13's (1.18) has it.

:func:`trixie_skopeo` returns a chroot built with
``debootstrap --variant=minbase --include=skopeo,ca-certificates,netavark trixie DIR
http://deb.debian.org/debian`` (a few minutes; needs root and the Debian mirror; ``netavark``
because trixie's ``golang-github-containers-common`` depends on the virtual package
``container-network-stack``, which debootstrap does not resolve by itself), cached
between runs under ``$STRATA_TEST_CACHE`` (default ``/var/cache/strata-tests``) as
``trixie-skopeo-YYYY-MM-DD``: a chroot younger than :data:`MAX_AGE_DAYS` is reused, else a new
one is built in a temporary directory beside it and renamed into place (atomic: a failed or
concurrent build never leaves a half chroot under the final name). Missing ``debootstrap``,
``chroot`` or root: the test fails in CI (``$CI``) and is skipped elsewhere.

:func:`run_skopeo` runs that skopeo through ``chroot`` with the files it is given copied into
the chroot's ``/tmp/<run>`` (policy.json, registries.d); the network namespace is the host's,
so ``127.0.0.1:PORT`` is the test's server.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from support.clients import missing

MIRROR = "http://deb.debian.org/debian"
MAX_AGE_DAYS = 7
BUILD_TIMEOUT = 900


def cache_dir() -> Path:
    return Path(os.environ.get("STRATA_TEST_CACHE", "/var/cache/strata-tests"))


def _fresh(root: Path, today: dt.date) -> Path | None:
    best: tuple[dt.date, Path] | None = None
    for entry in root.glob("trixie-skopeo-*"):
        try:
            day = dt.date.fromisoformat(entry.name.removeprefix("trixie-skopeo-"))
        except ValueError:
            continue
        if (today - day).days < MAX_AGE_DAYS and (entry / "usr/bin/skopeo").exists() and (
                best is None or day > best[0]):
            best = (day, entry)
    return None if best is None else best[1]


def trixie_skopeo() -> Path:
    """The cached (or freshly built) trixie chroot holding ``/usr/bin/skopeo``."""
    debootstrap = shutil.which("debootstrap")
    if debootstrap is None:
        missing("debootstrap is not on PATH", "install the Debian package 'debootstrap' "
                "(apt-get install debootstrap)")
    if shutil.which("chroot") is None or os.geteuid() != 0:
        missing("a Debian 13 chroot needs root and chroot", "run the trust interop tests as "
                "root")
    assert debootstrap is not None
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    today = dt.date.today()
    found = _fresh(root, today)
    if found is not None:
        return found
    with open(root / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time; the others then reuse it
        found = _fresh(root, today)
        if found is not None:
            return found
        work = Path(tempfile.mkdtemp(prefix=".trixie-building-", dir=root))
        try:
            done = subprocess.run(
                [debootstrap, "--variant=minbase", "--include=skopeo,ca-certificates,netavark",
                 "trixie", str(work), MIRROR],
                capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False)
            if done.returncode != 0:
                raise AssertionError(f"debootstrap failed ({done.returncode}):\n"
                                     f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
            final = root / f"trixie-skopeo-{today.isoformat()}"
            work.rename(final)
            return final
        finally:
            if work.exists():
                shutil.rmtree(work, ignore_errors=True)


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str


def run_skopeo(chroot: Path, args: Sequence[str], files: Mapping[str, bytes],
               timeout: float = 120.0) -> Run:
    """``chroot CHROOT skopeo ARGS`` with ``files`` (relative name -> bytes) placed in a
    private directory of the chroot; ``{dir}`` in ARGS names that directory (as the chroot
    sees it)."""
    name = f"strata-{uuid.uuid4().hex[:12]}"
    inside = Path("/tmp") / name
    host = chroot / "tmp" / name
    host.mkdir(mode=0o700, parents=True)
    try:
        for rel, data in files.items():
            path = host / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        argv = [a.replace("{dir}", str(inside)) for a in args]
        done = subprocess.run(["chroot", str(chroot), "/usr/bin/skopeo", *argv],
                              capture_output=True, text=True, timeout=timeout, check=False,
                              env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
                                   "TMPDIR": str(inside)})
        return Run(done.returncode, done.stdout, done.stderr)
    finally:
        shutil.rmtree(host, ignore_errors=True)
