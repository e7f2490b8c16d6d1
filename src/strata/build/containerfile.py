"""Parse a Containerfile (Dockerfile syntax) into frozen instruction values.

Follows the Dockerfile reference (docs.docker.com/reference/dockerfile/):

* "Format" / "Parser directives": ``# escape=`` and ``# syntax=`` at the top of the
  file (a syntax directive naming anything but ``docker/dockerfile`` is refused);
  comments, empty lines and line continuations (via ``dockerfile_parse``).
* "Environment replacement": ``$VAR``, ``${VAR}``, ``${VAR:-word}``, ``${VAR-word}``,
  ``${VAR:+word}``, ``${VAR+word}``, ``${VAR:?msg}``, ``${VAR?msg}``, quote removal and
  escapes, for ADD, COPY, ENV, EXPOSE, FROM, LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR
  (plus ARG defaults and the ``--from``/``--chown``/``--chmod`` flags); RUN, CMD,
  ENTRYPOINT, SHELL, HEALTHCHECK and ONBUILD keep their text, as Docker does.
* "ARG" / "Scope": an ARG before the first FROM is global and only visible to FROM
  lines and to stages that redeclare it; ``ENV`` overrides an ARG of the same name.
* "Understand how ARG and FROM interact", "Shell and exec form", "HEALTHCHECK",
  "ONBUILD" (FROM, MAINTAINER and ONBUILD cannot be triggers), "MAINTAINER
  (deprecated)" (recorded as a ``maintainer`` label).

Not supported, refused with :class:`ContainerfileError` naming the line: heredocs
(``<<EOF``), ``RUN --mount``/``--security``, ``FROM --platform``, ``COPY --link``/
``--parents``/``--exclude``, unknown instructions and flags.

``.containerignore``/``.dockerignore`` files follow BuildKit's ``dockerignore``
reader and ``moby/patternmatcher``: Go ``filepath.Match`` globs plus ``**``, ``!``
exceptions, the last matching pattern wins, and a pattern matching a directory also
matches everything below it.
"""

from __future__ import annotations

import io
import json
import posixpath
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal

from dockerfile_parse import DockerfileParser

__all__ = [
    "Add",
    "Arg",
    "Cmd",
    "Command",
    "Containerfile",
    "ContainerfileError",
    "Copy",
    "Entrypoint",
    "Env",
    "Expose",
    "Healthcheck",
    "IgnoreMatcher",
    "Instruction",
    "Label",
    "Onbuild",
    "Run",
    "Shell",
    "Stage",
    "StopSignal",
    "User",
    "Volume",
    "Workdir",
    "expand_word",
    "parse_containerfile",
    "parse_ignore_file",
]


class ContainerfileError(ValueError):
    """A Containerfile (or ignore file) could not be parsed; ``line`` is 1-based."""

    def __init__(self, message: str, line: int | None = None) -> None:
        self.message = message
        self.line = line
        super().__init__(f"line {line}: {message}" if line is not None else message)


#: Shell form (a string run through the stage's SHELL) or exec form (argv).
Command = str | tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class Instruction:
    """Common part of every instruction: keyword, 1-based line and text as written."""

    keyword: str
    line: int
    raw: str = ""


@dataclass(frozen=True, kw_only=True)
class Run(Instruction):
    """``RUN``; ``build_args`` are the ARG values in scope (exported to the command)."""

    command: Command
    network: Literal["default", "none", "host"] = "default"
    build_args: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, kw_only=True)
class Copy(Instruction):
    """``COPY``; ``from_stage`` is a stage name, stage index or image reference."""

    sources: tuple[str, ...]
    dest: str
    from_stage: str | None = None
    chown: str | None = None
    chmod: int | None = None


@dataclass(frozen=True, kw_only=True)
class Add(Instruction):
    """``ADD`` (sources may be URLs or local archives; the builder decides)."""

    sources: tuple[str, ...]
    dest: str
    chown: str | None = None
    chmod: int | None = None
    checksum: str | None = None


@dataclass(frozen=True, kw_only=True)
class Env(Instruction):
    pairs: tuple[tuple[str, str], ...]


@dataclass(frozen=True, kw_only=True)
class Arg(Instruction):
    """``ARG``: declared names with their (expanded) defaults, ``None`` if none."""

    pairs: tuple[tuple[str, str | None], ...]


@dataclass(frozen=True, kw_only=True)
class Label(Instruction):
    """``LABEL`` (and deprecated ``MAINTAINER``, as the ``maintainer`` label)."""

    pairs: tuple[tuple[str, str], ...]


@dataclass(frozen=True, kw_only=True)
class Workdir(Instruction):
    path: str


@dataclass(frozen=True, kw_only=True)
class User(Instruction):
    user: str


@dataclass(frozen=True, kw_only=True)
class Expose(Instruction):
    """``EXPOSE``; ports normalised to ``"<port>/<proto>"``, ranges expanded."""

    ports: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class Volume(Instruction):
    paths: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class Cmd(Instruction):
    command: Command


@dataclass(frozen=True, kw_only=True)
class Entrypoint(Instruction):
    command: Command


@dataclass(frozen=True, kw_only=True)
class StopSignal(Instruction):
    signal: str


@dataclass(frozen=True, kw_only=True)
class Shell(Instruction):
    argv: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class Healthcheck(Instruction):
    """``HEALTHCHECK``: ``command`` ``None`` means ``NONE``; durations in nanoseconds."""

    command: Command | None
    interval: int | None = None
    timeout: int | None = None
    start_period: int | None = None
    start_interval: int | None = None
    retries: int | None = None


@dataclass(frozen=True, kw_only=True)
class Onbuild(Instruction):
    """``ONBUILD``: the trigger text, recorded for the image config, never run here."""

    trigger: str


@dataclass(frozen=True)
class Stage:
    """One ``FROM`` block.  ``base`` is expanded; it may name an earlier stage."""

    name: str | None
    base: str
    instructions: tuple[Instruction, ...]
    line: int = 0
    index: int = 0


@dataclass(frozen=True)
class Containerfile:
    stages: tuple[Stage, ...]
    global_args: tuple[Arg, ...] = ()
    escape: str = "\\"
    syntax: str | None = None

    def stage(self, ref: str) -> Stage:
        """The stage called *ref* (case-insensitive) or with index *ref*."""
        for stage in self.stages:
            if stage.name == ref.lower() or str(stage.index) == ref:
                return stage
        raise KeyError(ref)


# --------------------------------------------------------------------------- words


def split_words(text: str, escape: str) -> list[tuple[str, int]]:
    """Split on unquoted, unescaped whitespace; words keep their quotes and escapes.

    Returns ``(word, end_offset)`` pairs (BuildKit ``parseWords``).
    """
    words: list[tuple[str, int]] = []
    current: list[str] = []
    quote: str | None = None
    in_word = False
    i = 0
    while i < len(text):
        ch = text[i]
        if quote is None and ch.isspace():
            if in_word:
                words.append(("".join(current), i))
                current, in_word = [], False
            i += 1
            continue
        in_word = True
        if ch == escape:
            if i + 1 < len(text):
                current.append(text[i : i + 2])
            i += 2
            continue
        if quote is None and ch in "'\"":
            quote = ch
        elif ch == quote:
            quote = None
        current.append(ch)
        i += 1
    if in_word:
        words.append(("".join(current), len(text)))
    return words


_NAME_CHARS = re.compile(r"[A-Za-z0-9_]+")


class _Expander:
    """Quote removal, escapes and ``$``-substitution for one word (BuildKit ``shell.Lex``)."""

    def __init__(self, text: str, env: Mapping[str, str], escape: str, line: int | None) -> None:
        self.s = text
        self.i = 0
        self.env = env
        self.escape = escape
        self.line = line

    def error(self, message: str) -> ContainerfileError:
        return ContainerfileError(f"{message} in {self.s!r}", self.line)

    def process(self, stop: str | None = None) -> str:
        out: list[str] = []
        while self.i < len(self.s):
            ch = self.s[self.i]
            if stop is not None and ch == stop:
                self.i += 1
                return "".join(out)
            if ch == "'":
                end = self.s.find("'", self.i + 1)
                if end < 0:
                    raise self.error("unterminated single quote")
                out.append(self.s[self.i + 1 : end])
                self.i = end + 1
            elif ch == '"':
                out.append(self.double_quoted())
            elif ch == "$":
                out.append(self.dollar())
            elif ch == self.escape:
                out.append(self.s[self.i + 1 : self.i + 2])
                self.i += 2
            else:
                out.append(ch)
                self.i += 1
        if stop is not None:
            raise self.error(f"missing {stop!r}")
        return "".join(out)

    def double_quoted(self) -> str:
        out: list[str] = []
        self.i += 1
        while self.i < len(self.s):
            ch = self.s[self.i]
            if ch == '"':
                self.i += 1
                return "".join(out)
            if ch == "$":
                out.append(self.dollar())
                continue
            if ch == self.escape and self.s[self.i + 1 : self.i + 2] in ('"', "$", self.escape):
                self.i += 1
                ch = self.s[self.i]
            out.append(ch)
            self.i += 1
        raise self.error("unterminated double quote")

    def dollar(self) -> str:
        self.i += 1
        if self.s[self.i : self.i + 1] == "{":
            return self.braced()
        match = _NAME_CHARS.match(self.s, self.i)
        if match is None:
            return "$"
        self.i = match.end()
        return self.env.get(match.group(), "")

    def braced(self) -> str:
        self.i += 1
        match = _NAME_CHARS.match(self.s, self.i)
        if match is None:
            raise self.error("bad substitution")
        name = match.group()
        self.i = match.end()
        value = self.env.get(name)
        if self.s[self.i : self.i + 1] == "}":
            self.i += 1
            return value or ""
        colon = self.s[self.i : self.i + 1] == ":"
        self.i += colon
        op = self.s[self.i : self.i + 1]
        if op not in ("-", "+", "?"):
            raise self.error(f"unsupported substitution modifier {op!r} for ${{{name}}}")
        self.i += 1
        word = self.process(stop="}")
        unset = value is None or (colon and value == "")
        if op == "-":
            return word if unset else (value or "")
        if op == "+":
            return "" if unset else word
        if unset:
            raise self.error(f"{name}: {word or 'parameter not set or empty'}")
        return value or ""


def expand_word(
    text: str, env: Mapping[str, str], *, escape: str = "\\", line: int | None = None
) -> str:
    """Expand one Dockerfile word: quotes removed, escapes applied, ``$VAR`` substituted."""
    return _Expander(text, env, escape, line).process()


# --------------------------------------------------------------------------- helpers

_STAGE_NAME = re.compile(r"[a-z][a-z0-9_.-]*")
_ARG_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FLAG = re.compile(r"--([A-Za-z][A-Za-z0-9-]*)(?:=(.*))?", re.DOTALL)
_HEREDOC = re.compile(r"(?:^|\s)<<-?\s*[\"']?[A-Za-z_][\w-]*")
_PORT = re.compile(r"(\d+)(?:-(\d+))?(?:/(tcp|udp|sctp))?", re.IGNORECASE)
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {
    "ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
    "m": 60_000_000_000, "h": 3_600_000_000_000,
}  # fmt: skip
_SYNTAX = re.compile(
    r"(docker\.io/)?docker/dockerfile(-upstream)?(:[\w.-]+)?(@sha256:[0-9a-f]{64})?"
)
_DIRECTIVE = re.compile(r"#\s*([A-Za-z]+)\s*=\s*(.*?)\s*")


def _json_array(text: str) -> tuple[str, ...] | None:
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


def _parse_duration(text: str, flag: str, line: int) -> int:
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


def _parse_ports(words: list[str], line: int) -> tuple[str, ...]:
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


def _parse_chmod(value: str, line: int) -> int:
    if not re.fullmatch(r"[0-7]{1,4}", value):
        raise ContainerfileError(f"--chmod must be an octal mode, got {value!r}", line)
    return int(value, 8)


# --------------------------------------------------------------------------- parser

_RUN_FLAGS = {"network"}
_COPY_FLAGS = {"from", "chown", "chmod"}
_ADD_FLAGS = {"chown", "chmod", "checksum"}
_HEALTHCHECK_FLAGS = {"interval", "timeout", "start-period", "start-interval", "retries"}
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
_KEYWORDS = frozenset(
    {
        "FROM", "RUN", "COPY", "ADD", "ENV", "ARG", "LABEL", "WORKDIR", "USER", "EXPOSE",
        "VOLUME", "CMD", "ENTRYPOINT", "STOPSIGNAL", "SHELL", "HEALTHCHECK", "ONBUILD",
        "MAINTAINER",
    }
)  # fmt: skip
_NETWORKS: dict[str, Literal["default", "none", "host"]] = {
    "default": "default",
    "none": "none",
    "host": "host",
}


@dataclass
class _StageBuilder:
    name: str | None
    base: str
    line: int
    index: int
    env: dict[str, str]
    args: dict[str, str] = field(default_factory=dict)
    instructions: list[Instruction] = field(default_factory=list)

    def lookup(self) -> dict[str, str]:
        return {**self.args, **self.env}  # ENV overrides ARG of the same name


class _Parser:
    def __init__(
        self,
        escape: str,
        build_args: Mapping[str, str],
        base_env: Callable[[str], Mapping[str, str]] | None,
    ) -> None:
        self.escape = escape
        self.build_args = build_args
        self.base_env = base_env
        self.global_values: dict[str, str] = {}
        self.global_args: list[Arg] = []
        self.stages: list[Stage] = []
        self.stage_envs: dict[str, dict[str, str]] = {}  # final ENV of each named stage
        self.stage_names: set[str] = set()
        self.current: _StageBuilder | None = None

    # ---------------------------------------------------------------- utilities
    def expand(self, text: str, line: int, env: Mapping[str, str] | None = None) -> str:
        if env is None:
            env = self.stage(line).lookup()
        return expand_word(text, env, escape=self.escape, line=line)

    def words(self, text: str) -> list[str]:
        return [word for word, _ in split_words(text, self.escape)]

    def stage(self, line: int) -> _StageBuilder:
        if self.current is None:
            raise ContainerfileError("only ARG may appear before the first FROM", line)
        return self.current

    def flags(
        self, keyword: str, rest: str, allowed: set[str], line: int
    ) -> tuple[dict[str, str | None], str]:
        found: dict[str, str | None] = {}
        pos = 0
        for word, end in split_words(rest, self.escape):
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

    def no_flags(self, keyword: str, rest: str, line: int) -> str:
        return self.flags(keyword, rest, set(), line)[1]

    def command(self, rest: str) -> Command:
        argv = _json_array(rest)
        return argv if argv is not None else rest.strip()

    def pairs(self, keyword: str, rest: str, line: int) -> list[tuple[str, str]]:
        """``key=value ...`` or legacy ``key value`` (BuildKit ``parseNameVal``)."""
        words = split_words(rest, self.escape)
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

    def check_heredoc(self, keyword: str, rest: str, line: int) -> None:
        if _HEREDOC.search(rest):
            raise ContainerfileError(f"{keyword}: heredocs (<<EOF) are not supported", line)

    # ------------------------------------------------------------- instructions
    def handle(self, keyword: str, rest: str, line: int, raw: str) -> None:
        if keyword not in _KEYWORDS:
            raise ContainerfileError(f"unknown instruction {keyword}", line)
        if keyword == "FROM":
            self.from_(rest, line)
            return
        if keyword == "ARG" and self.current is None:
            self.global_args.append(self.arg(rest, line, raw, global_scope=True))
            return
        stage = self.stage(line)
        handler: Callable[[str, int, str], Instruction] = getattr(self, f"i_{keyword.lower()}")
        stage.instructions.append(handler(rest, line, raw))

    def from_(self, rest: str, line: int) -> None:
        words = self.words(self.no_flags("FROM", rest, line))
        if len(words) not in (1, 3) or (len(words) == 3 and words[1].upper() != "AS"):
            raise ContainerfileError("FROM expects 'image' or 'image AS name'", line)
        base = self.expand(words[0], line, self.global_values)
        if not base:
            raise ContainerfileError(f"FROM: {words[0]!r} expands to an empty image name", line)
        name = words[2].lower() if len(words) == 3 else None
        if name is not None:
            if not _STAGE_NAME.fullmatch(name):
                raise ContainerfileError(f"invalid stage name {words[2]!r}", line)
            if name in self.stage_names:
                raise ContainerfileError(f"duplicate stage name {name!r}", line)
            self.stage_names.add(name)
        self.finish_stage()
        parent = self.stage_envs.get(base.lower())
        if parent is not None:
            env = dict(parent)
        elif self.base_env is not None and base != "scratch":
            env = dict(self.base_env(base))
        else:
            env = {}
        self.current = _StageBuilder(name, base, line, len(self.stages), env)

    def finish_stage(self) -> None:
        current = self.current
        if current is None:
            return
        self.stages.append(
            Stage(
                current.name, current.base, tuple(current.instructions), current.line, current.index
            )
        )
        if current.name is not None:
            self.stage_envs[current.name] = current.env

    def arg(self, rest: str, line: int, raw: str, *, global_scope: bool) -> Arg:
        words = self.words(self.no_flags("ARG", rest, line))
        if not words:
            raise ContainerfileError("ARG requires at least one argument", line)
        env = self.global_values if global_scope else self.stage(line).lookup()
        declared: list[tuple[str, str | None]] = []
        for word in words:
            name, sep, default_raw = word.partition("=")
            if not _ARG_NAME.fullmatch(name):
                raise ContainerfileError(f"ARG: invalid name {name!r}", line)
            default = self.expand(default_raw, line, env) if sep else None
            declared.append((name, default))
        for name, default in declared:
            if name in self.build_args:
                value: str | None = self.build_args[name]
            elif default is not None:
                value = default
            else:
                value = None if global_scope else self.global_values.get(name)
            target = self.global_values if global_scope else self.stage(line).args
            if value is not None:
                target[name] = value
        return Arg(keyword="ARG", line=line, raw=raw, pairs=tuple(declared))

    def i_arg(self, rest: str, line: int, raw: str) -> Instruction:
        return self.arg(rest, line, raw, global_scope=False)

    def i_run(self, rest: str, line: int, raw: str) -> Instruction:
        flags, rest = self.flags("RUN", rest, _RUN_FLAGS, line)
        self.check_heredoc("RUN", rest, line)
        network_flag = flags.get("network") or "default"
        network = _NETWORKS.get(network_flag)
        if network is None:
            raise ContainerfileError(f"RUN --network={network_flag} is not supported", line)
        command = self.command(rest)
        if not command:
            raise ContainerfileError("RUN requires a command", line)
        stage = self.stage(line)
        return Run(
            keyword="RUN",
            line=line,
            raw=raw,
            command=command,
            network=network,
            build_args=tuple(stage.args.items()),
        )

    def transfer(
        self, keyword: str, rest: str, line: int, allowed: set[str]
    ) -> tuple[dict[str, str | None], tuple[str, ...], str]:
        flags, rest = self.flags(keyword, rest, allowed, line)
        self.check_heredoc(keyword, rest, line)
        argv = _json_array(rest)
        items = list(argv) if argv is not None else self.words(rest)
        expanded = [self.expand(item, line) for item in items]
        if len(expanded) < 2 or not all(expanded):
            raise ContainerfileError(
                f"{keyword} requires at least one source and a destination", line
            )
        values = {
            key: None if value is None else self.expand(value, line) for key, value in flags.items()
        }
        return values, tuple(expanded[:-1]), expanded[-1]

    def i_copy(self, rest: str, line: int, raw: str) -> Instruction:
        flags, sources, dest = self.transfer("COPY", rest, line, _COPY_FLAGS)
        source_stage = flags.get("from")
        if source_stage is not None:
            stage = self.stage(line)
            if source_stage.isdigit() and int(source_stage) >= stage.index:
                raise ContainerfileError(f"COPY --from={source_stage}: no earlier stage", line)
            if source_stage.lower() == stage.name:
                raise ContainerfileError("COPY --from cannot refer to its own stage", line)
        chmod = flags.get("chmod")
        return Copy(
            keyword="COPY",
            line=line,
            raw=raw,
            sources=sources,
            dest=dest,
            from_stage=source_stage,
            chown=flags.get("chown"),
            chmod=None if chmod is None else _parse_chmod(chmod, line),
        )

    def i_add(self, rest: str, line: int, raw: str) -> Instruction:
        flags, sources, dest = self.transfer("ADD", rest, line, _ADD_FLAGS)
        chmod = flags.get("chmod")
        return Add(
            keyword="ADD",
            line=line,
            raw=raw,
            sources=sources,
            dest=dest,
            chown=flags.get("chown"),
            checksum=flags.get("checksum"),
            chmod=None if chmod is None else _parse_chmod(chmod, line),
        )

    def i_env(self, rest: str, line: int, raw: str) -> Instruction:
        stage = self.stage(line)
        env = stage.lookup()  # every pair sees the values from before this instruction
        pairs = [
            (self.expand(key, line, env), self.expand(value, line, env))
            for key, value in self.pairs("ENV", self.no_flags("ENV", rest, line), line)
        ]
        for key, value in pairs:
            if not key or "=" in key:
                raise ContainerfileError(f"ENV: invalid variable name {key!r}", line)
            stage.env[key] = value
        return Env(keyword="ENV", line=line, raw=raw, pairs=tuple(pairs))

    def i_label(self, rest: str, line: int, raw: str) -> Instruction:
        env = self.stage(line).lookup()
        pairs = [
            (self.expand(key, line, env), self.expand(value, line, env))
            for key, value in self.pairs("LABEL", self.no_flags("LABEL", rest, line), line)
        ]
        if not all(key for key, _ in pairs):
            raise ContainerfileError("LABEL: empty label key", line)
        return Label(keyword="LABEL", line=line, raw=raw, pairs=tuple(pairs))

    def i_maintainer(self, rest: str, line: int, raw: str) -> Instruction:
        self.stage(line)
        return Label(
            keyword="MAINTAINER", line=line, raw=raw, pairs=(("maintainer", rest.strip()),)
        )

    def single(self, keyword: str, rest: str, line: int) -> str:
        value = self.expand(self.no_flags(keyword, rest, line), line)
        if not value:
            raise ContainerfileError(f"{keyword} requires a value", line)
        return value

    def i_workdir(self, rest: str, line: int, raw: str) -> Instruction:
        return Workdir(
            keyword="WORKDIR", line=line, raw=raw, path=self.single("WORKDIR", rest, line)
        )

    def i_user(self, rest: str, line: int, raw: str) -> Instruction:
        return User(keyword="USER", line=line, raw=raw, user=self.single("USER", rest, line))

    def i_stopsignal(self, rest: str, line: int, raw: str) -> Instruction:
        signal = self.single("STOPSIGNAL", rest, line)
        if not re.fullmatch(r"\d+|(SIG)?[A-Z0-9+-]+", signal, re.IGNORECASE):
            raise ContainerfileError(f"STOPSIGNAL: invalid signal {signal!r}", line)
        return StopSignal(keyword="STOPSIGNAL", line=line, raw=raw, signal=signal)

    def i_expose(self, rest: str, line: int, raw: str) -> Instruction:
        words = self.words(self.no_flags("EXPOSE", rest, line))
        expanded = [part for word in words for part in self.expand(word, line).split()]
        if not expanded:
            raise ContainerfileError("EXPOSE requires at least one port", line)
        return Expose(keyword="EXPOSE", line=line, raw=raw, ports=_parse_ports(expanded, line))

    def i_volume(self, rest: str, line: int, raw: str) -> Instruction:
        rest = self.no_flags("VOLUME", rest, line)
        argv = _json_array(rest)
        items = list(argv) if argv is not None else self.words(rest)
        paths = tuple(self.expand(item, line) for item in items)
        if not paths or not all(paths):
            raise ContainerfileError("VOLUME requires non-empty paths", line)
        return Volume(keyword="VOLUME", line=line, raw=raw, paths=paths)

    def i_cmd(self, rest: str, line: int, raw: str) -> Instruction:
        self.stage(line)
        return Cmd(
            keyword="CMD",
            line=line,
            raw=raw,
            command=self.command(self.no_flags("CMD", rest, line)),
        )

    def i_entrypoint(self, rest: str, line: int, raw: str) -> Instruction:
        self.stage(line)
        command = self.command(self.no_flags("ENTRYPOINT", rest, line))
        return Entrypoint(keyword="ENTRYPOINT", line=line, raw=raw, command=command)

    def i_shell(self, rest: str, line: int, raw: str) -> Instruction:
        argv = _json_array(self.no_flags("SHELL", rest, line))
        if not argv:
            raise ContainerfileError('SHELL requires a JSON array, e.g. ["/bin/sh", "-c"]', line)
        return Shell(keyword="SHELL", line=line, raw=raw, argv=argv)

    def i_healthcheck(self, rest: str, line: int, raw: str) -> Instruction:
        flags, rest = self.flags("HEALTHCHECK", rest, _HEALTHCHECK_FLAGS, line)
        head, tail = ([*rest.split(None, 1), "", ""])[:2]
        head, tail = head.upper(), tail.strip()
        if head == "NONE":
            if flags or tail:
                raise ContainerfileError("HEALTHCHECK NONE takes no other arguments", line)
            return Healthcheck(keyword="HEALTHCHECK", line=line, raw=raw, command=None)
        if head != "CMD" or not tail:
            raise ContainerfileError("HEALTHCHECK expects NONE or [options] CMD command", line)
        durations: dict[str, int] = {}
        for name in ("interval", "timeout", "start-period", "start-interval"):
            value = flags.get(name)
            if value is not None:
                durations[name.replace("-", "_")] = _parse_duration(value, name, line)
        retries_text = flags.get("retries")
        retries = None
        if retries_text is not None:
            if not retries_text.isdigit():
                raise ContainerfileError("--retries must be an integer >= 0", line)
            retries = int(retries_text)
        return Healthcheck(
            keyword="HEALTHCHECK",
            line=line,
            raw=raw,
            command=self.command(tail),
            retries=retries,
            **durations,
        )

    def i_onbuild(self, rest: str, line: int, raw: str) -> Instruction:
        self.stage(line)
        trigger = rest.strip()
        inner = trigger.split(None, 1)[0].upper() if trigger else ""
        if inner in ("ONBUILD", "FROM", "MAINTAINER"):
            raise ContainerfileError(f"{inner} is not allowed as an ONBUILD trigger", line)
        if inner not in _KEYWORDS:
            raise ContainerfileError(f"ONBUILD: unknown trigger instruction {inner!r}", line)
        return Onbuild(keyword="ONBUILD", line=line, raw=raw, trigger=trigger)

    def result(self, syntax: str | None) -> Containerfile:
        self.finish_stage()
        if not self.stages:
            raise ContainerfileError("no FROM instruction")
        return Containerfile(tuple(self.stages), tuple(self.global_args), self.escape, syntax)


def _directives(lines: list[str]) -> tuple[str, str | None]:
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


def _structure(lines: list[str]) -> Iterator[tuple[str, str, int, int]]:
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
            if word in _KEYWORDS and len(line.split()) == 1:
                raise ContainerfileError(f"{word} requires arguments", number)
            raise ContainerfileError("unexpected end of file inside a line continuation", number)


def parse_containerfile(
    text: str,
    *,
    build_args: Mapping[str, str] | None = None,
    base_env: Callable[[str], Mapping[str, str]] | None = None,
) -> Containerfile:
    """Parse Containerfile *text*.

    *build_args* (``--build-arg``) override ARG defaults; undeclared names are ignored.
    *base_env* maps a base image reference to its config ``Env`` so that ``$VAR`` in a
    stage can see the base image's variables, as Docker does (stages based on an earlier
    stage inherit that stage's ENV automatically).
    """
    text = text.removeprefix("\ufeff").replace("\r\n", "\n")
    lines = text.splitlines(keepends=True)
    escape, syntax = _directives(lines)
    parser = _Parser(escape, build_args or {}, base_env)
    for keyword, value, first, last in _structure(lines):
        raw = "".join(lines[first - 1 : last]).strip()
        parser.handle(keyword, value, first, raw)
    return parser.result(syntax)


# --------------------------------------------------------------------------- ignore files


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
