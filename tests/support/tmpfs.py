"""A small tmpfs a test mounts (root): a disk that fills, a RAM scratch that runs out."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

from support.clients import missing


@contextlib.contextmanager
def mounted_tmpfs(mount: Path, options: str, why: str) -> Iterator[Path]:
    """Mount a tmpfs with *options* (``size=64m,...``) on the new directory *mount* for the
    block; fails in CI and skips elsewhere without root (*why*: which tests need it)."""
    mount.mkdir()
    if os.geteuid() != 0:
        missing("mounting a tmpfs needs root", why)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        missing(f"cannot mount a tmpfs: {done.stderr.strip()}", why)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
