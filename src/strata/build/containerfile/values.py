"""What a parsed Containerfile is: frozen instruction values, stages and the parse error.

One dataclass per instruction of the Dockerfile reference
(docs.docker.com/reference/dockerfile/): ``FROM`` blocks become :class:`Stage`, the file
a :class:`Containerfile`; ``MAINTAINER (deprecated)`` is recorded as a ``maintainer``
:class:`Label`.  Values hold expanded text where Docker expands it ("Environment
replacement"); RUN, CMD, ENTRYPOINT, SHELL, HEALTHCHECK and ONBUILD keep their text.
:data:`KEYWORDS` are the instructions the parser knows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "KEYWORDS",
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
]

#: Every instruction of the Dockerfile reference that strata parses.
KEYWORDS = frozenset(
    {
        "FROM", "RUN", "COPY", "ADD", "ENV", "ARG", "LABEL", "WORKDIR", "USER", "EXPOSE",
        "VOLUME", "CMD", "ENTRYPOINT", "STOPSIGNAL", "SHELL", "HEALTHCHECK", "ONBUILD",
        "MAINTAINER",
    }
)  # fmt: skip


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
