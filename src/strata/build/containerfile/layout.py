"""The file's layout: parser directives, comments, empty lines and line continuations.

Per the Dockerfile reference (docs.docker.com/reference/dockerfile/), "Format" and
"Parser directives": ``# escape=`` (backslash or backtick) and ``# syntax=`` at the top
of the file (a syntax directive naming anything but ``docker/dockerfile`` is refused);
comments and empty lines are skipped, also inside a line continuation.  The split into
instructions is ``dockerfile_parse``'s; what each instruction means is :mod:`.parser`'s.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator

from dockerfile_parse import DockerfileParser

from strata.build.containerfile.values import KEYWORDS, ContainerfileError

__all__ = ["directives", "instructions"]

_SYNTAX = re.compile(
    r"(docker\.io/)?docker/dockerfile(-upstream)?(:[\w.-]+)?(@sha256:[0-9a-f]{64})?"
)
_DIRECTIVE = re.compile(r"#\s*([A-Za-z]+)\s*=\s*(.*?)\s*")


def directives(lines: list[str]) -> tuple[str, str | None]:
    """The ``# escape=`` and ``# syntax=`` directives at the top: ``(escape, syntax)``."""
    escape, syntax = "\\", None
    seen: set[str] = set()
    for number, text in enumerate(lines, start=1):
        match = _DIRECTIVE.fullmatch(text.strip())
        if match is None:
            break
        name, value = match.group(1).lower(), match.group(2)
        if name not in ("escape", "syntax"):
            break  # like dockerfile_parse: any other comment ends the directives
        if name in seen:
            raise ContainerfileError(f"parser directive {name!r} given twice", number)
        seen.add(name)
        if name == "escape":
            if value not in ("\\", "`"):
                raise ContainerfileError(f"invalid escape character {value!r}", number)
            escape = value
        elif name == "syntax":
            if not _SYNTAX.fullmatch(value):
                raise ContainerfileError(
                    f"unsupported syntax directive {value!r}: only docker/dockerfile", number
                )
            syntax = value
    return escape, syntax


def instructions(lines: list[str]) -> Iterator[tuple[str, str, int, int]]:
    """``(KEYWORD, value, first_line, last_line)`` per instruction, 1-based, in order."""
    # dockerfile_parse ends a continuation at an empty line, where Docker skips it:
    # present empty lines as comments, which both skip (keeping line numbers).
    text = "".join(line if line.strip() else "#\n" for line in lines)
    parser = DockerfileParser(fileobj=io.BytesIO(text.encode("utf-8")), env_replace=False)
    covered: set[int] = set()
    for item in parser.structure:
        first, last = item["startline"] + 1, item["endline"] + 1
        covered.update(range(first, last + 1))
        if item["content"].lstrip().startswith("#"):
            continue
        yield item["instruction"], item["value"], first, last
    for number, line in enumerate(lines, start=1):
        if number not in covered and line.strip():
            word = line.split()[0].upper()
            if word in KEYWORDS and len(line.split()) == 1:
                raise ContainerfileError(f"{word} requires arguments", number)
            raise ContainerfileError("unexpected end of file inside a line continuation", number)

