"""Containerfiles (Dockerfile syntax, per the Dockerfile reference) to frozen values.

One concern per module:

* :mod:`.values` -- the instruction values, :class:`Stage`, :class:`Containerfile` and
  :class:`ContainerfileError`;
* :mod:`.layout` -- parser directives, comments and line continuations ("Format");
* :mod:`.expansion` -- word splitting and ``$VAR`` expansion ("Environment replacement");
* :mod:`.operands` -- flags, ``key=value`` pairs, exec form, durations, ports, modes;
* :mod:`.parser` -- :func:`parse_containerfile`: the instructions, with ARG/ENV scoping.

The ``.containerignore``/``.dockerignore`` matcher lives beside the build context, in
:mod:`strata.build.ignore`.
"""

from __future__ import annotations

from strata.build.containerfile.expansion import expand_word
from strata.build.containerfile.parser import parse_containerfile
from strata.build.containerfile.values import (
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
]
