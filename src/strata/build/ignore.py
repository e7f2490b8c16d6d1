"""The build context's ignore file: ``.containerignore`` / ``.dockerignore`` patterns.

Follows the ``.dockerignore`` rules (docs.docker.com/build/concepts/context/,
".dockerignore files") as BuildKit reads them (``dockerignore.ReadAll`` and
``moby/patternmatcher``): ``#`` comments, blank lines
skipped, patterns cleaned like Go's ``filepath.Clean`` and relative to the context; Go
``filepath.Match`` globs plus ``**``; ``!`` exceptions; the last matching pattern wins;
a pattern matching a directory also matches everything below it.  A bad pattern raises
:class:`~strata.build.containerfile.ContainerfileError` with its line number.  Used by
:mod:`strata.build.context` (which file, and COPY source matching) and
:mod:`strata.build.transfer` (what a COPY of a directory leaves out).
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from strata.build.containerfile import ContainerfileError

__all__ = ["IgnoreMatcher", "parse_ignore_file"]


def _go_clean(path: str) -> str:
    """Go's ``filepath.Clean`` for ``/``-separated paths."""
    cleaned = posixpath.normpath(re.sub("/+", "/", path)) if path else "."
    return cleaned


def _glob_regex(pattern: str, line: int) -> re.Pattern[str]:
    """Translate a ``patternmatcher`` glob into a regular expression (full match)."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            if pattern[i + 1 : i + 2] == "*":
                i += 2
                if pattern[i : i + 1] == "/":
                    i += 1
                out.append(".*" if i >= len(pattern) else "(?:.*/)?")
                continue
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\":
            i += 1
            out.append(re.escape(pattern[i : i + 1]) if i < len(pattern) else "\\\\")
        elif ch == "[":
            i = _char_class(pattern, i, out, line)
        else:
            out.append(re.escape(ch))
        i += 1
    try:
        return re.compile("".join(out), re.DOTALL)
    except re.error as exc:
        raise ContainerfileError(f"bad ignore pattern {pattern!r}: {exc}", line) from exc


def _char_class(pattern: str, start: int, out: list[str], line: int) -> int:
    """Translate the ``[...]`` class at *start*; return the index of its closing ``]``."""
    i = start + 1
    negate = pattern[i : i + 1] == "^"
    i += negate
    body: list[str] = []
    while i < len(pattern) and (pattern[i] != "]" or not body):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            i += 1
            body.append(re.escape(pattern[i]))
        else:
            body.append(ch if ch == "-" and body else re.escape(ch))
        i += 1
    if i >= len(pattern) or not body:
        raise ContainerfileError(f"bad ignore pattern {pattern!r}: unclosed '['", line)
    out.append(("[^/" if negate else "[") + "".join(body) + "]")
    return i


@dataclass(frozen=True)
class _IgnorePattern:
    text: str
    exclusion: bool
    regex: re.Pattern[str]
    literal_prefix: str


@dataclass(frozen=True)
class IgnoreMatcher:
    """Compiled ``.containerignore`` patterns; see :func:`parse_ignore_file`."""

    patterns: tuple[_IgnorePattern, ...]

    def is_ignored(self, relpath: str) -> bool:
        """True if *relpath* (relative to the context, ``/``-separated) is excluded.

        Each pattern is tried against the path and, failing that, against each of its
        parent directories; the last pattern that matches decides
        (``MatchesOrParentMatches``).
        """
        path = _go_clean(relpath).lstrip("/")
        parents = path.split("/")[:-1]
        prefixes = ["/".join(parents[: i + 1]) for i in range(len(parents))]
        matched = False
        for pattern in self.patterns:
            if pattern.exclusion != matched:
                continue
            if pattern.regex.fullmatch(path) or any(
                pattern.regex.fullmatch(prefix) for prefix in prefixes
            ):
                matched = not pattern.exclusion
        return matched

    def can_prune(self, relpath: str) -> bool:
        """True if *relpath* is ignored and no ``!`` pattern can re-include anything below."""
        if not self.is_ignored(relpath):
            return False
        below = _go_clean(relpath).lstrip("/") + "/"
        return not any(
            p.exclusion
            and (p.literal_prefix.startswith(below) or below.startswith(p.literal_prefix))
            for p in self.patterns
        )


def parse_ignore_file(text: str) -> IgnoreMatcher:
    """Parse ``.containerignore``/``.dockerignore`` text (BuildKit ``dockerignore.ReadAll``).

    Lines starting with ``#`` are comments; blank lines are skipped; other lines are
    trimmed, cleaned like Go's ``filepath.Clean`` and stripped of a leading ``/``.
    ``!pattern`` re-includes.  A bad pattern raises :class:`ContainerfileError` with
    its line number.
    """
    patterns: list[_IgnorePattern] = []
    for number, line in enumerate(text.removeprefix("\ufeff").splitlines(), start=1):
        if line.startswith("#"):
            continue
        pattern = line.strip()
        if not pattern:
            continue
        exclusion = pattern.startswith("!")
        if exclusion:
            pattern = pattern[1:].strip()
            if not pattern:
                raise ContainerfileError('illegal exclusion pattern "!"', number)
        pattern = _go_clean(pattern)
        if len(pattern) > 1 and pattern.startswith("/"):
            pattern = pattern[1:]
        prefix = re.split(r"[*?\[\\]", pattern, maxsplit=1)[0]
        patterns.append(_IgnorePattern(pattern, exclusion, _glob_regex(pattern, number), prefix))
    return IgnoreMatcher(tuple(patterns))
