"""The parser: layout and words to instruction values, with ARG and ENV scoping.

Follows the Dockerfile reference (docs.docker.com/reference/dockerfile/): each
instruction's arguments, and which variables each one sees.

* "Environment replacement" applies to ADD, COPY, ENV, EXPOSE, FROM, LABEL, STOPSIGNAL,
  USER, VOLUME, WORKDIR (plus ARG defaults and the ``--from``/``--chown``/``--chmod``
  flags); RUN, CMD, ENTRYPOINT, SHELL, HEALTHCHECK and ONBUILD keep their text.
* "ARG" / "Scope" and "Understand how ARG and FROM interact": an ARG before the first
  FROM is global and only visible to FROM lines and to stages that redeclare it;
  ``--build-arg`` values override declared defaults; ``ENV`` overrides an ARG of the same
  name; a stage based on an earlier stage starts with that stage's ENV, one based on an
  image with the image's (``base_env``).
* "Shell and exec form", "HEALTHCHECK", "ONBUILD" (FROM, MAINTAINER and ONBUILD cannot
  be triggers), "MAINTAINER (deprecated)" (recorded as a ``maintainer`` label).

Not supported, refused with :class:`ContainerfileError` naming the line: heredocs
(``<<EOF``), ``RUN --mount``/``--security``, ``FROM --platform``, ``COPY --link``/
``--parents``/``--exclude``, unknown instructions and flags.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from strata.build.containerfile.expansion import expand_word, split_words
from strata.build.containerfile.layout import directives, instructions
from strata.build.containerfile.operands import (
    check_heredoc,
    healthcheck_options,
    json_array,
    name_value_pairs,
    parse_chmod,
    parse_flags,
    parse_ports,
)
from strata.build.containerfile.values import (
    KEYWORDS,
    Add,
    Arg,
    Cmd,
    Command,
    Containerfile,
    ContainerfileError,
    Copy,
    Entrypoint,
    Env,
    Expose,
    Healthcheck,
    Instruction,
    Label,
    Onbuild,
    Run,
    Shell,
    Stage,
    StopSignal,
    User,
    Volume,
    Workdir,
)

__all__ = ["parse_containerfile"]

_STAGE_NAME = re.compile(r"[a-z][a-z0-9_.-]*")
_ARG_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_RUN_FLAGS = {"network"}
_COPY_FLAGS = {"from", "chown", "chmod"}
_ADD_FLAGS = {"chown", "chmod", "checksum"}
_HEALTHCHECK_FLAGS = {"interval", "timeout", "start-period", "start-interval", "retries"}
_NETWORKS: dict[str, Literal["default", "none", "host"]] = {
    "default": "default",
    "none": "none",
    "host": "host",
}


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
    escape, syntax = directives(lines)
    parser = _Parser(escape, build_args or {}, base_env)
    for keyword, value, first, last in instructions(lines):
        raw = "".join(lines[first - 1 : last]).strip()
        parser.handle(keyword, value, first, raw)
    return parser.result(syntax)


@dataclass
class _StageBuilder:
    """The stage being parsed: its ARG values (declared in it) and ENV so far."""

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
    """One pass over the instructions; ``global_values`` are the ARGs before any FROM."""

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
        return parse_flags(keyword, rest, allowed, line, self.escape)

    def no_flags(self, keyword: str, rest: str, line: int) -> str:
        return self.flags(keyword, rest, set(), line)[1]

    def command(self, rest: str) -> Command:
        argv = json_array(rest)
        return argv if argv is not None else rest.strip()

    def pairs(self, keyword: str, rest: str, line: int) -> list[tuple[str, str]]:
        return name_value_pairs(keyword, rest, line, self.escape)

    # ------------------------------------------------------------- instructions
    def handle(self, keyword: str, rest: str, line: int, raw: str) -> None:
        if keyword not in KEYWORDS:
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
        check_heredoc("RUN", rest, line)
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
        check_heredoc(keyword, rest, line)
        argv = json_array(rest)
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
            chmod=None if chmod is None else parse_chmod(chmod, line),
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
            chmod=None if chmod is None else parse_chmod(chmod, line),
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
        return Expose(keyword="EXPOSE", line=line, raw=raw, ports=parse_ports(expanded, line))

    def i_volume(self, rest: str, line: int, raw: str) -> Instruction:
        rest = self.no_flags("VOLUME", rest, line)
        argv = json_array(rest)
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
        argv = json_array(self.no_flags("SHELL", rest, line))
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
        return Healthcheck(
            keyword="HEALTHCHECK",
            line=line,
            raw=raw,
            command=self.command(tail),
            **healthcheck_options(flags, line),
        )

    def i_onbuild(self, rest: str, line: int, raw: str) -> Instruction:
        self.stage(line)
        trigger = rest.strip()
        inner = trigger.split(None, 1)[0].upper() if trigger else ""
        if inner in ("ONBUILD", "FROM", "MAINTAINER"):
            raise ContainerfileError(f"{inner} is not allowed as an ONBUILD trigger", line)
        if inner not in KEYWORDS:
            raise ContainerfileError(f"ONBUILD: unknown trigger instruction {inner!r}", line)
        return Onbuild(keyword="ONBUILD", line=line, raw=raw, trigger=trigger)

    def result(self, syntax: str | None) -> Containerfile:
        self.finish_stage()
        if not self.stages:
            raise ContainerfileError("no FROM instruction")
        return Containerfile(tuple(self.stages), tuple(self.global_args), self.escape, syntax)

