"""The build's source: a directory or a git repository (URL and ref), its commit, its
``SOURCE_DATE_EPOCH``, its ignore file and the ``COPY`` sources matched in it.

``SOURCE_DATE_EPOCH`` (reproducible-builds.org): the value given by the caller (the CLI
passes ``$SOURCE_DATE_EPOCH`` or ``--source-date-epoch``), else the committer time of the
source commit (``git log -1 --format=%ct``), else 0.  Git URLs follow Docker's form
``URL#ref[:subdir]`` (or ``--ref``); they are cloned with the ``git`` command into the
build's work directory with umask 022, so file modes do not depend on the caller's umask.
"""

from __future__ import annotations

import fnmatch
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from strata.build.errors import BuildError
from strata.build.ignore import IgnoreMatcher, parse_ignore_file

__all__ = ["Source", "is_git_url", "match_sources", "open_source"]

_GIT_URL = re.compile(r"^(?:https?|git|ssh|file)://|^git@|\.git(?:#.*)?$")
_GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1", "LC_ALL": "C"}


@dataclass(frozen=True)
class Source:
    root: Path  # the build context directory
    containerfile: Path
    url: str | None
    ref: str | None
    commit: str | None
    dirty: bool
    source_date_epoch: int
    ignore: IgnoreMatcher | None
    prefix: str = ""  # the context directory inside the git repository ("" for its top)


def is_git_url(spec: str) -> bool:
    return bool(_GIT_URL.search(spec)) and not Path(spec).is_dir()


def _git(args: list[str], cwd: Path | None = None, check: bool = True) -> str:
    cmd = ["git", "-c", "safe.directory=*", *args]
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False,
                              env={**os.environ, **_GIT_ENV}, umask=0o022,
                              stdin=subprocess.DEVNULL)
    except OSError as exc:
        raise BuildError(f"cannot run git: {exc}") from exc
    if check and proc.returncode != 0:
        raise BuildError(f"git {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout.strip() if proc.returncode == 0 else ""


def _clone(url: str, ref: str | None, dest: Path) -> None:
    _git(["clone", "--quiet", "--no-checkout", "--", url, os.fspath(dest)])
    target = ref or "HEAD"
    commit = _git(["rev-parse", "--verify", "--quiet", f"{target}^{{commit}}"], dest, check=False)
    if not commit:
        commit = _git(["rev-parse", "--verify", "--quiet", f"origin/{target}^{{commit}}"], dest,
                      check=False)
    if not commit:
        raise BuildError(f"{url}: no branch, tag or commit {target!r}")
    _git(["checkout", "--quiet", "--detach", commit], dest)


def _commit_of(root: Path, context: Path) -> tuple[str | None, bool, str]:
    """HEAD of the checkout at *root*, whether it differs from it (a changed tracked file
    anywhere, or an untracked file -- not ignored -- in the *context*), and the context's
    path inside the repository (``""`` for its top)."""
    inside = _git(["rev-parse", "--is-inside-work-tree"], root, check=False)
    if inside != "true":
        return None, False, ""
    commit = _git(["rev-parse", "--verify", "--quiet", "HEAD"], root, check=False) or None
    dirty = bool(_git(["status", "--porcelain", "--untracked-files=no"], root, check=False))
    dirty = dirty or bool(_git(["status", "--porcelain", "--untracked-files=normal", "--",
                                "."], context, check=False))
    prefix = _git(["rev-parse", "--show-prefix"], context, check=False).rstrip("/")
    return commit, dirty, prefix


def _commit_time(root: Path, commit: str) -> int | None:
    text = _git(["log", "-1", "--format=%ct", commit, "--"], root, check=False)
    return int(text) if text.isdigit() else None


def open_source(spec: str, *, file: str | None = None, ref: str | None = None,
                commit: str | None = None, source_date_epoch: int | None = None,
                clone_dir: Path | None = None) -> Source:
    """Open a directory or clone a git URL (into *clone_dir*, which must not exist)."""
    url: str | None = None
    subdir = ""
    if is_git_url(spec):
        url, _, fragment = spec.partition("#")
        frag_ref, _, subdir = fragment.partition(":")
        ref = ref or frag_ref or None
        if clone_dir is None:
            raise BuildError("a git source needs a directory to clone into")
        _clone(url, commit or ref, clone_dir)
        checkout = clone_dir
        root = (clone_dir / subdir).resolve() if subdir else clone_dir
        if not root.is_relative_to(clone_dir.resolve()) or not root.is_dir():
            raise BuildError(f"{spec}: no directory {subdir!r} in the repository")
    else:
        root = Path(spec).resolve()
        if not root.is_dir():
            raise BuildError(f"{spec}: not a directory (nor a git URL)")
        checkout = root
    head, dirty, prefix = _commit_of(checkout, root)
    if commit is None:
        commit = head
    elif head is not None:
        # a named commit: recorded in full; a checkout that is not at it is "dirty"
        full = _git(["rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}"], checkout,
                    check=False)
        commit = full or commit
        dirty = dirty or commit != head
    if source_date_epoch is None:
        when = _commit_time(checkout, commit) if commit else None
        source_date_epoch = when if when is not None else 0
    containerfile = _find_containerfile(root, file)
    return Source(root, containerfile, url, ref, commit, dirty, source_date_epoch,
                  _ignore_of(root), prefix)


def _find_containerfile(root: Path, file: str | None) -> Path:
    if file is not None:
        path = Path(file)
        path = path if path.is_absolute() else root / path
        if not path.is_file():
            raise BuildError(f"{file}: no such Containerfile")
        return path
    for name in ("Containerfile", "Dockerfile"):
        if (root / name).is_file():
            return root / name
    raise BuildError(f"{root}: no Containerfile or Dockerfile (use --file)")


def _ignore_of(root: Path) -> IgnoreMatcher | None:
    for name in (".containerignore", ".dockerignore"):
        path = root / name
        if path.is_file():
            return parse_ignore_file(path.read_text(encoding="utf-8"))
    return None


def _component_match(name: str, pattern: str) -> bool:
    return fnmatch.fnmatchcase(name, pattern.replace("[^", "[!"))


def match_sources(root: Path, pattern: str, ignore: IgnoreMatcher | None,
                  line: int | None = None) -> list[str]:
    """Context-relative paths (``""`` for the context itself) matched by a COPY source.

    The pattern is relative to the context (a leading ``/`` too) and cleaned lexically so
    it cannot leave it; components may hold Go ``filepath.Match`` wildcards.  Ignored
    paths are not part of the context.
    """
    parts = [p for p in os.path.normpath("/" + pattern).split("/") if p]
    found = [""]
    for part in parts:
        wild = any(ch in part for ch in "*?[")
        following: list[str] = []
        for rel in found:
            base = root / rel if rel else root
            if not wild:
                following.append(f"{rel}/{part}" if rel else part)
                continue
            try:
                names = sorted(os.listdir(base), key=os.fsencode)
            except (NotADirectoryError, FileNotFoundError):
                continue
            following += [f"{rel}/{n}" if rel else n for n in names
                          if _component_match(n, part)]
        found = following
    result = []
    for rel in found:
        path = root / rel if rel else root
        if not os.path.lexists(path):
            continue
        if rel and ignore is not None and ignore.is_ignored(rel):
            continue
        real = path.resolve()
        if not real.is_relative_to(root.resolve()):
            raise BuildError(f"{pattern}: {rel} points outside the build context", line=line)
        result.append(rel)
    if not result:
        raise BuildError(f"no source files match {pattern!r} in the build context", line=line)
    return result
