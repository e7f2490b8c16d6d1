"""The syntax of an instruction's arguments, before any variable is expanded.

Per the Dockerfile reference (docs.docker.com/reference/dockerfile/): ``--flag[=value]``
options (unknown, duplicate and unsupported ones refused, naming the line), ``key=value``
pairs and the legacy ``key value`` form of ENV and LABEL (BuildKit ``parseNameVal``),
"Shell and exec form" (a JSON array of strings), HEALTHCHECK durations (Go
``time.ParseDuration`` units, in nanoseconds), EXPOSE ports and ranges, ``--chmod``
octal modes, and the refusal of heredocs (``<<EOF``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from strata.build.containerfile.expansion import split_words
from strata.build.containerfile.values import ContainerfileError

__all__ = [
    "check_heredoc",
    "healthcheck_options",
    "json_array",
    "name_value_pairs",
    "parse_chmod",
    "parse_duration",
    "parse_flags",
    "parse_ports",
]

_FLAG = re.compile(r"--([A-Za-z][A-Za-z0-9-]*)(?:=(.*))?", re.DOTALL)
_HEREDOC = re.compile(r"(?:^|\s)<<-?\s*[\"']?[A-Za-z_][\w-]*")
_PORT = re.compile(r"(\d+)(?:-(\d+))?(?:/(tcp|udp|sctp))?", re.IGNORECASE)
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {
    "ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
    "m": 60_000_000_000, "h": 3_600_000_000_000,
}  # fmt: skip
_REFUSED_FLAGS = {
    ("FROM", "platform"): "FROM --platform is not supported (strata builds for the host)",
    ("RUN", "mount"): "RUN --mount is not supported",
    ("RUN", "security"): "RUN --security is not supported",
    ("COPY", "link"): "COPY --link is not supported",
    ("COPY", "parents"): "COPY --parents is not supported",
    ("COPY", "exclude"): "COPY --exclude is not supported",
    ("ADD", "link"): "ADD --link is not supported",
    ("ADD", "keep-git-dir"): "ADD --keep-git-dir is not supported",
    ("ADD", "from"): "ADD does not support --from (use COPY --from)",
}


def parse_flags(
    keyword: str, rest: str, allowed: set[str], line: int, escape: str
) -> tuple[dict[str, str | None], str]:
    """The leading ``--name[=value]`` flags of *rest* (values unexpanded) and what follows."""
    found: dict[str, str | None] = {}
    pos = 0
    for word, end in split_words(rest, escape):
        match = _FLAG.fullmatch(word)
        if match is None:
            break
        name = match.group(1)
        if (keyword, name) in _REFUSED_FLAGS:
            raise ContainerfileError(_REFUSED_FLAGS[(keyword, name)], line)
        if name not in allowed:
            raise ContainerfileError(f"{keyword}: unknown flag --{name}", line)
        if name in found:
            raise ContainerfileError(f"{keyword}: duplicate flag --{name}", line)
        found[name] = match.group(2)
        pos = end
    return found, rest[pos:].strip()


def name_value_pairs(keyword: str, rest: str, line: int, escape: str) -> list[tuple[str, str]]:
    """``key=value ...`` or legacy ``key value`` (BuildKit ``parseNameVal``), unexpanded."""
    words = split_words(rest, escape)
    if not words:
        raise ContainerfileError(f"{keyword} requires at least one argument", line)
    if "=" not in words[0][0]:
        key = words[0][0]
        value = rest[words[0][1] :].strip()
        if not value:
            raise ContainerfileError(f"{keyword} {key} needs a value (key=value)", line)
        return [(key, value)]
    pairs = []
    for word, _ in words:
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise ContainerfileError(f"{keyword}: expected key=value, got {word!r}", line)
        pairs.append((key, value))
    return pairs


def check_heredoc(keyword: str, rest: str, line: int) -> None:
    """Refuse a heredoc (``<<EOF``), which strata does not support."""
    if _HEREDOC.search(rest):
        raise ContainerfileError(f"{keyword}: heredocs (<<EOF) are not supported", line)


def json_array(text: str) -> tuple[str, ...] | None:
    """The exec form: *text* as a JSON array of strings, ``None`` if it is not one."""
    stripped = text.strip()
    if not stripped.startswith("["):
        return None
    try:
        value = json.loads(stripped)
    except ValueError:
        return None
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(value)
    return None


def parse_duration(text: str, flag: str, line: int) -> int:
    """A HEALTHCHECK ``--flag`` duration in nanoseconds: 0 or at least 1ms."""
    pos, total = 0, 0.0
    while pos < len(text):
        match = _DURATION.match(text, pos)
        if match is None:
            raise ContainerfileError(f"--{flag}: invalid duration {text!r}", line)
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if not text or (0 < total < 1_000_000):
        raise ContainerfileError(f"--{flag}: duration must be 0 or at least 1ms", line)
    return int(total)


def healthcheck_options(flags: Mapping[str, str | None], line: int) -> dict[str, int]:
    """HEALTHCHECK's options as :class:`~.values.Healthcheck` fields.

    ``--interval``/``--timeout``/``--start-period``/``--start-interval`` in nanoseconds,
    ``--retries`` a count; options not given are left out.
    """
    options: dict[str, int] = {}
    for name in ("interval", "timeout", "start-period", "start-interval"):
        value = flags.get(name)
        if value is not None:
            options[name.replace("-", "_")] = parse_duration(value, name, line)
    retries = flags.get("retries")
    if retries is not None:
        if not retries.isdigit():
            raise ContainerfileError("--retries must be an integer >= 0", line)
        options["retries"] = int(retries)
    return options


def parse_ports(words: list[str], line: int) -> tuple[str, ...]:
    """EXPOSE words as ``"<port>/<proto>"`` (default ``tcp``), ranges expanded, no repeats."""
    ports: list[str] = []
    for word in words:
        match = _PORT.fullmatch(word)
        if match is None:
            raise ContainerfileError(f"EXPOSE: invalid port {word!r}", line)
        first = int(match.group(1))
        last = int(match.group(2) or first)
        proto = (match.group(3) or "tcp").lower()
        if not 0 < first <= last <= 65535:
            raise ContainerfileError(f"EXPOSE: invalid port range {word!r}", line)
        ports.extend(f"{port}/{proto}" for port in range(first, last + 1))
    return tuple(dict.fromkeys(ports))


def parse_chmod(value: str, line: int) -> int:
    """A ``--chmod`` octal mode (1 to 4 digits)."""
    if not re.fullmatch(r"[0-7]{1,4}", value):
        raise ContainerfileError(f"--chmod must be an octal mode, got {value!r}", line)
    return int(value, 8)
