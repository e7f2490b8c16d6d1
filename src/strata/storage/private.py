"""Owner-only files and directories: everything strata keeps in its data dir.

The data dir holds password hashes, robot secret hashes, sealed webhook secrets, the token
signing key and uploads in progress, so nothing in it may be readable by other local users.
Every file strata creates there is mode 0600 and every directory 0700, whatever the process's
umask: modes are given explicitly on creation (a umask can only take bits away) and the
server and the offline commands also run under umask 077 (:func:`owner_only_umask`), which
covers the files other libraries create (SQLite's ``-wal``/``-shm`` inherit the database
file's mode; prometheus_client's multiprocess files). :func:`tighten` repairs a data dir made
by an older strata or by hand.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600
_OPEN_BITS = 0o077  # group and other


def owner_only_umask() -> int:
    """Make the process create owner-only files from now on; returns the previous umask."""
    return os.umask(_OPEN_BITS)


def private_dir(path: Path) -> Path:
    """``mkdir -p`` with every directory it creates mode 0700 (``Path.mkdir(parents=True)``
    would create the parents with the umask's mode)."""
    private_dirs(os.fspath(path))
    return path


def private_dirs(path: str) -> None:
    """:func:`private_dir` on a path given as a string, for hot paths: a ``Path`` built from
    a changing string (a blob's fan-out directory) interns each part in the interpreter's
    table, whose churn reallocates that ~2 MiB table every few tens of thousands of pushes,
    a new block at the top of the heap each time (the soak's growth)."""
    missing: list[str] = []
    current = path
    while not os.path.exists(current):
        missing.append(current)
        parent = os.path.dirname(current) or "."
        if parent == current:
            break
        current = parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(directory, DIR_MODE)
            os.chmod(directory, DIR_MODE)  # a umask cannot widen 0700; this makes it exact


def create_private_file(path: Path) -> bool:
    """Create ``path`` empty with mode 0600 unless it exists; True if this call made it."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, FILE_MODE)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def write_private_file(path: Path, data: bytes) -> bool:
    """Write ``data`` to a new file ``path`` (mode 0600, fsynced, appearing whole or not at
    all); False and nothing written if ``path`` exists already (another process won)."""
    directory = private_dir(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), FILE_MODE)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    with contextlib.suppress(OSError):
        fsync_dir(directory)
    return True


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """Make the names in *directory* durable (a rename or link into it): fsync the directory."""
    dfd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


@dataclass
class Tightening:
    """What :func:`tighten` changed (counts per kind) and what it could not."""

    directories: int = 0
    files: int = 0
    failed: list[str] = field(default_factory=list)

    def messages(self, root: Path) -> list[str]:
        """One line per kind of fix, not one per file."""
        lines = []
        if self.directories:
            lines.append(f"{root}: {self.directories} director"
                         f"{'y was' if self.directories == 1 else 'ies were'} open to other "
                         "users; made owner-only (0700)")
        if self.files:
            lines.append(f"{root}: {self.files} file{' was' if self.files == 1 else 's were'} "
                         "open to other users; made owner-only (0600 or 0700)")
        if self.failed:
            lines.append(f"{root}: could not make {len(self.failed)} path(s) owner-only, "
                         f"e.g. {self.failed[0]}")
        return lines


def _walk(root: Path, entries: Collection[str] | None) -> Iterator[tuple[str, os.stat_result]]:
    """``root`` and every path under it (only under its ``entries``, if given) with its lstat;
    symlinks are not followed (and never changed: their targets may be anywhere)."""
    stack = [str(root)]
    while stack:
        top = stack.pop()
        try:
            st = os.lstat(top)
        except FileNotFoundError:
            continue
        yield top, st
        if top == str(root) and entries is not None:
            stack.extend(str(root / name) for name in entries)
        elif stat.S_ISDIR(st.st_mode):
            with contextlib.suppress(FileNotFoundError, PermissionError), os.scandir(top) as it:
                stack.extend(entry.path for entry in it)


def _chmod_nofollow(path: str, mode: int) -> None:
    try:
        os.chmod(path, mode, follow_symlinks=False)
    except NotImplementedError:  # the path became a symlink, or an old libc: check, then chmod
        if stat.S_ISLNK(os.lstat(path).st_mode):
            raise OSError(f"{path} became a symbolic link") from None
        os.chmod(path, mode)


def tighten(root: Path, entries: Collection[str] | None = None) -> Tightening:
    """Take group and other permissions off ``root`` and every directory and file under it —
    only under the names ``entries`` of ``root``, if given (what strata makes there: a data
    dir given by mistake, such as a home directory, keeps everything else as it was)."""
    done = Tightening()
    if not root.exists():
        return done
    for path, st in _walk(root, entries):
        mode = stat.S_IMODE(st.st_mode)
        if stat.S_ISLNK(st.st_mode) or not mode & _OPEN_BITS:
            continue
        try:
            _chmod_nofollow(path, mode & ~_OPEN_BITS)
        except OSError as exc:
            done.failed.append(f"{path} ({exc.strerror or exc})")
            continue
        if stat.S_ISDIR(st.st_mode):
            done.directories += 1
        else:
            done.files += 1
    return done
