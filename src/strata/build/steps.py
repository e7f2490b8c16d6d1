"""Executing the instructions of one stage: each changes the config, adds a layer, or both.

What goes into the image config follows what Docker (BuildKit) records, per the
Dockerfile reference: ``ENV`` values replace in place and new ones are appended; a stage
without ``PATH`` gets the default one; ``CMD``/``ENTRYPOINT``/``HEALTHCHECK`` in shell
form are wrapped in the stage's ``SHELL``; ``ENTRYPOINT`` clears an inherited ``CMD`` unless
this stage set one; ``EXPOSE`` and ``VOLUME`` accumulate; ``ONBUILD`` triggers are recorded
(never run); ``WORKDIR`` creates its directory (owned by the current ``USER``) when missing.
Every instruction but ``ARG`` gets a history entry; ``created`` is ``SOURCE_DATE_EPOCH``.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import posixpath
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from strata.build import containerfile as cf
from strata.build.context import Source, match_sources
from strata.build.errors import EXIT_STEP_FAILED, BuildError
from strata.build.fsview import DirLayer, MergedView
from strata.build.jail import JailLimits
from strata.build.layers import LayerWriter, Slot
from strata.build.remote import PulledImage
from strata.build.sandbox import RunSpec, SandboxResult, run_in_sandbox
from strata.build.scratch import Scratch
from strata.build.transfer import (
    ContextItem,
    Item,
    extract_archive,
    is_archive,
    match_view,
    transfer_entries,
)
from strata.build.users import resolve_owner, resolve_user
from strata.image.layer import TarEntry, dir_entry, merge_entries
from strata.image.layer import diff_tree as _diff_tree

__all__ = ["DEFAULT_PATH", "BuildEnv", "StageState", "run_stage", "state_from_image"]

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_SHELL = ("/bin/sh", "-c")
RECORDED_XATTRS = ("security.capability",)


def iso(epoch: int) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class StageState:
    slots: list[Slot] = field(default_factory=list)  # bottom first
    history: list[dict[str, Any]] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)  # everything but Env
    shell: tuple[str, ...] = DEFAULT_SHELL
    cmd_set: bool = False
    bases: list[PulledImage] = field(default_factory=list)

    def fork(self) -> StageState:
        """An independent copy (a stage built ``FROM`` an earlier stage)."""
        return StageState(list(self.slots), copy.deepcopy(self.history), dict(self.env),
                          copy.deepcopy(self.config), self.shell, False, list(self.bases))

    def view(self) -> MergedView:
        return MergedView([slot.fs for slot in reversed(self.slots)])


def state_from_image(image: PulledImage | None) -> StageState:
    """The starting state of a stage ``FROM`` *image* (``None``: ``scratch``)."""
    state = StageState()
    if image is not None:
        config = dict(image.config.get("config") or {})
        if config.get("OnBuild"):
            raise BuildError(f"{image.reference} has ONBUILD triggers, which strata does not "
                             "run; build from an image without them")
        for item in config.pop("Env", None) or []:
            key, _, value = item.partition("=")
            state.env[key] = value
        state.config = config
        state.shell = tuple(config.get("Shell") or DEFAULT_SHELL)
        state.history = copy.deepcopy(image.config.get("history") or [])
        state.slots = [Slot(DirLayer(d), d, blob)
                       for d, blob in zip(image.layer_dirs, image.layers, strict=True)]
        state.bases = [image]
    state.env.setdefault("PATH", DEFAULT_PATH)
    return state


@dataclass
class BuildEnv:
    """What every stage of one build shares."""

    source: Source
    writer: LayerWriter
    work: Path
    sde: int
    network: str  # default network of RUN: "none" or "host"
    stage_state: Callable[[str], StageState | None]
    image: Callable[[str], PulledImage]
    log: Callable[[str], None]
    output: Callable[[bytes], None]
    step_logs: list[dict[str, Any]] = field(default_factory=list)
    counter: int = 0
    limits: JailLimits = field(default_factory=JailLimits)
    scratch: Scratch | None = None  # where RUN directories go (None: all in ``work``)

    def next(self) -> int:
        self.counter += 1
        return self.counter


def _words(pairs: tuple[tuple[str, str], ...]) -> str:
    return " ".join(f"{k}={json.dumps(v) if not v or ' ' in v else v}" for k, v in pairs)


def _argv(command: cf.Command, shell: tuple[str, ...]) -> list[str]:
    return list(command) if isinstance(command, tuple) else [*shell, command]


class _Stage:
    def __init__(self, env: BuildEnv, state: StageState, stage: cf.Stage) -> None:
        self.env = env
        self.state = state
        self.stage = stage

    def history(self, created_by: str, *, empty: bool) -> dict[str, Any]:
        entry: dict[str, Any] = {"created": iso(self.env.sde), "created_by": created_by}
        if empty:
            entry["empty_layer"] = True
        self.state.history.append(entry)
        return entry

    def add_slot(self, slot: Slot, created_by: str) -> None:
        slot.history = self.history(created_by, empty=False)
        self.state.slots.append(slot)

    def workdir(self) -> str:
        return str(self.state.config.get("WorkingDir") or "/")

    # -- metadata -----------------------------------------------------------------------
    def i_arg(self, ins: cf.Arg) -> None:
        return None

    def i_env(self, ins: cf.Env) -> None:
        for key, value in ins.pairs:
            self.state.env[key] = value
        self.history(f"ENV {_words(ins.pairs)}", empty=True)

    def i_label(self, ins: cf.Label) -> None:
        labels = dict(self.state.config.get("Labels") or {})
        labels.update(ins.pairs)
        self.state.config["Labels"] = labels
        self.history(f"LABEL {_words(ins.pairs)}", empty=True)

    def i_user(self, ins: cf.User) -> None:
        self.state.config["User"] = ins.user
        self.history(f"USER {ins.user}", empty=True)

    def i_expose(self, ins: cf.Expose) -> None:
        ports = dict(self.state.config.get("ExposedPorts") or {})
        ports.update({port: {} for port in ins.ports})
        self.state.config["ExposedPorts"] = ports
        self.history(f"EXPOSE {' '.join(ins.ports)}", empty=True)

    def i_volume(self, ins: cf.Volume) -> None:
        volumes = dict(self.state.config.get("Volumes") or {})
        volumes.update({path: {} for path in ins.paths})
        self.state.config["Volumes"] = volumes
        self.history(f"VOLUME {json.dumps(list(ins.paths))}", empty=True)

    def i_cmd(self, ins: cf.Cmd) -> None:
        self.state.config["Cmd"] = _argv(ins.command, self.state.shell)
        self.state.cmd_set = True
        self.history(f"CMD {json.dumps(self.state.config['Cmd'])}", empty=True)

    def i_entrypoint(self, ins: cf.Entrypoint) -> None:
        self.state.config["Entrypoint"] = _argv(ins.command, self.state.shell)
        if not self.state.cmd_set:
            self.state.config.pop("Cmd", None)
        self.history(f"ENTRYPOINT {json.dumps(self.state.config['Entrypoint'])}", empty=True)

    def i_stopsignal(self, ins: cf.StopSignal) -> None:
        self.state.config["StopSignal"] = ins.signal
        self.history(f"STOPSIGNAL {ins.signal}", empty=True)

    def i_shell(self, ins: cf.Shell) -> None:
        self.state.shell = ins.argv
        self.state.config["Shell"] = list(ins.argv)
        self.history(f"SHELL {json.dumps(list(ins.argv))}", empty=True)

    def i_onbuild(self, ins: cf.Onbuild) -> None:
        self.state.config["OnBuild"] = [*(self.state.config.get("OnBuild") or []), ins.trigger]
        self.history(f"ONBUILD {ins.trigger}", empty=True)

    def i_healthcheck(self, ins: cf.Healthcheck) -> None:
        check: dict[str, Any]
        if ins.command is None:
            check = {"Test": ["NONE"]}
        elif isinstance(ins.command, tuple):
            check = {"Test": ["CMD", *ins.command]}
        else:
            check = {"Test": ["CMD-SHELL", ins.command]}
        for key, value in (("Interval", ins.interval), ("Timeout", ins.timeout),
                           ("StartPeriod", ins.start_period),
                           ("StartInterval", ins.start_interval), ("Retries", ins.retries)):
            if value:
                check[key] = value
        self.state.config["Healthcheck"] = check
        self.history(f"HEALTHCHECK {json.dumps(check)}", empty=True)

    # -- filesystem ---------------------------------------------------------------------
    def i_workdir(self, ins: cf.Workdir) -> None:
        path = posixpath.normpath(posixpath.join(self.workdir(), ins.path))
        self.state.config["WorkingDir"] = path
        view = self.state.view()
        parts = view.resolve(path)
        node = view.lookup_parts(parts)
        if node is not None:
            if node.kind != "dir":
                raise BuildError(f"WORKDIR {path}: exists and is not a directory", line=ins.line)
            self.history(f"WORKDIR {path}", empty=True)
            return
        uid, gid = resolve_user(str(self.state.config.get("User") or ""), view, ins.line)
        entries = []
        for index in range(1, len(parts) + 1):
            existing = view.lookup_parts(parts[:index])
            member = "/".join(parts[:index])
            if existing is None:
                entries.append(dir_entry(member, mtime=self.env.sde, uid=uid, gid=gid))
            else:
                entries.append(dir_entry(member, mtime=min(existing.mtime, self.env.sde),
                                         uid=existing.uid, gid=existing.gid, mode=existing.mode))
        layer = merge_entries(entries, parent_mtime=self.env.sde)
        self.add_slot(self.env.writer.entry_slot(layer), f"WORKDIR {path}")

    def i_copy(self, ins: cf.Copy) -> None:
        items: list[Item] = []
        if ins.from_stage is not None:
            other = self.env.stage_state(ins.from_stage)
            source_view = other.view() if other is not None else _image_view(
                self.env.image(ins.from_stage))
            for pattern in ins.sources:
                items += match_view(source_view, pattern, ins.line)
        else:
            items = self.context_items(ins.sources, ins.line)
        self.transfer(items, ins, ins.chown, ins.chmod)

    def i_add(self, ins: cf.Add) -> None:
        if ins.checksum is not None:
            raise BuildError("ADD --checksum applies to URLs, which strata does not fetch",
                             line=ins.line)
        items: list[Item] = []
        for item in self.context_items(ins.sources, ins.line):
            assert isinstance(item, ContextItem)
            if is_archive(item.path):
                target = self.env.work / f"add{self.env.next()}"
                extract_archive(item.path, target)
                items.append(ContextItem(target, None, keep_owner=True))
            else:
                items.append(item)
        self.transfer(items, ins, ins.chown, ins.chmod)

    def context_items(self, sources: tuple[str, ...], line: int) -> list[Item]:
        items: list[Item] = []
        root = self.env.source.root
        for pattern in sources:
            if "://" in pattern or pattern.startswith("git@"):
                raise BuildError(f"{pattern}: remote sources are not supported (a build has "
                                 "no network; put the file in the source)", line=line)
            for rel in match_sources(root, pattern, self.env.source.ignore, line):
                items.append(ContextItem(root / rel if rel else root, rel))
        return items

    def transfer(self, items: list[Item], ins: cf.Copy | cf.Add, chown: str | None,
                 chmod: int | None) -> None:
        view = self.state.view()
        owner = resolve_owner(chown, view, ins.line) if chown else None
        entries = transfer_entries(items, ins.dest, workdir=self.workdir(), view=view,
                                   sde=self.env.sde, owner=owner, chmod=chmod,
                                   ignore=self.env.source.ignore, line=ins.line,
                                   git_modes=self.env.source.commit is not None)
        flags = "".join(f"--{k}={v} " for k, v in (("from", getattr(ins, "from_stage", None)),
                                                    ("chown", chown)) if v)
        if chmod is not None:
            flags += f"--chmod={chmod:o} "
        created_by = f"{ins.keyword} {flags}{' '.join(ins.sources)} {ins.dest}"
        self.add_slot(self.env.writer.entry_slot(entries), created_by)

    def i_run(self, ins: cf.Run) -> None:
        env = dict(self.state.env)
        args = [(k, v) for k, v in ins.build_args if k not in env]
        argv = _argv(ins.command, self.state.shell)
        network = "host" if ins.network == "host" or (
            ins.network == "default" and self.env.network == "host") else "none"
        lowers = [self.env.writer.materialize(slot, self.env.scratch)
                  for slot in reversed(self.state.slots)]
        spec = RunSpec(tuple(argv), tuple(f"{k}={v}" for k, v in [*env.items(), *args]),
                       self.workdir(), str(self.state.config.get("User") or ""),
                       "host" if network == "host" else "none", self.env.limits)
        self.env.step_logs[-1]["network"] = network
        result = self._jailed(lowers, f"run{self.env.next()}", spec)
        output = result.output.decode("utf-8", "replace")
        self.env.step_logs[-1]["output"] = output
        if result.exit_code != 0:
            raise BuildError(f"RUN failed with exit code {result.exit_code}", line=ins.line,
                             exit_code=EXIT_STEP_FAILED, output=output)
        prefix = f"|{len(args)} {' '.join(f'{k}={v}' for k, v in args)} " if args else ""
        shown = " ".join(argv) if isinstance(ins.command, str) else json.dumps(argv)
        upper = result.upper

        def entries() -> Iterator[TarEntry]:
            return _diff_tree(lowers, upper, source_date_epoch=self.env.sde,
                              owner=lambda uid, gid: (uid, gid), xattrs=RECORDED_XATTRS)
        self.add_slot(self.env.writer.dir_slot(upper, entries), f"RUN {prefix}{shown}")


    def _jailed(self, lowers: list[Path], name: str, spec: RunSpec) -> SandboxResult:
        """Run *spec* in its step directory *name* where the scratch places it; a RUN that
        failed for want of RAM (:meth:`Scratch.ran_out`) runs once more, on disk."""
        scratch = self.env.scratch
        if scratch is None:
            return run_in_sandbox(lowers, self.env.work / name, spec, self.env.output)
        step_dir = scratch.place(name)
        why = None
        try:
            result = run_in_sandbox(lowers, step_dir, spec, self.env.output)
            if result.exit_code != 0 and scratch.ran_out(step_dir):
                why = (f"RUN failed (exit code {result.exit_code}) after filling its RAM "
                       "scratch")
        except BuildError as exc:  # the jail could not even write its status: RAM full?
            if not scratch.ran_out(step_dir, tmpfs_full_only=True):
                raise
            why = f"{exc.message}; its RAM scratch is full"
        if why is not None:
            self.env.log(f"{why}: running it again on disk")
            result = run_in_sandbox(lowers, self.env.work / name, spec, self.env.output)
        scratch.charge(result.upper)
        return result


def _image_view(image: PulledImage) -> MergedView:
    return MergedView([DirLayer(d) for d in reversed(image.layer_dirs)])


def run_stage(env: BuildEnv, state: StageState, stage: cf.Stage, total: int,
              done: int) -> int:
    """Run the instructions of *stage* on *state*; returns the updated step count."""
    runner = _Stage(env, state, stage)
    for ins in stage.instructions:
        done += 1
        env.log(f"STEP {done}/{total}: {ins.raw.splitlines()[0] if ins.raw else ins.keyword}")
        env.step_logs.append({"step": done, "line": ins.line, "instruction": ins.raw,
                              "output": ""})
        handler: Callable[[Any], None] = getattr(runner, f"i_{type(ins).__name__.lower()}")
        handler(ins)
    return done
