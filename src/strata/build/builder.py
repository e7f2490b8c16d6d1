"""Containerfile -> image, on this machine: plan (parse, pull bases), then build stages.

:func:`plan_build` parses the Containerfile, works out which stages the target needs
(``FROM <stage>``, ``COPY --from``), pulls every image they name from the registry and
parses again with the base images' ``ENV`` visible to ``$VAR`` expansion.
:func:`build_image` runs the needed stages in order and assembles the target's config and
manifest.  It reads no clock and no environment: everything that varies comes in through
:class:`Plan` (``SOURCE_DATE_EPOCH`` included), so two builds give one digest.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from strata.build import containerfile as cf
from strata.build.assemble import Assembled, assemble
from strata.build.context import Source
from strata.build.errors import BuildError
from strata.build.fsview import MergedView
from strata.build.jail import JailLimits
from strata.build.labels import own_labels
from strata.build.layers import LayerWriter
from strata.build.record import os_packages
from strata.build.remote import BlobRef, PulledImage, Puller, parse_image_ref, same_registry
from strata.build.scratch import Scratch
from strata.build.steps import BuildEnv, StageState, iso, run_stage, state_from_image
from strata.image.layer import Compression, file_entry, merge_entries

__all__ = ["BuildOptions", "LocalBuild", "Plan", "build_image", "help_file", "plan_build"]

HELP_FILES = ("help.md", "README.md")


@dataclass(frozen=True)
class BuildOptions:
    cache_dir: Path
    containerfile: str | None = None
    namespace: str | None = None
    build_args: Mapping[str, str] = field(default_factory=dict)
    target: str | None = None
    network: Literal["none", "host"] = "none"
    compression: Compression = "gzip"
    level: int = 1
    limits: JailLimits = field(default_factory=JailLimits)  # of each RUN's jail


@dataclass(frozen=True)
class Plan:
    source: Source
    text: str
    containerfile: cf.Containerfile
    target: cf.Stage
    stages: tuple[cf.Stage, ...]  # the stages the target needs, in file order
    images: dict[str, PulledImage]  # by reference as written
    labels: dict[str, str]  # labels the Containerfile sets for the target


@dataclass(frozen=True)
class LocalBuild:
    image: Assembled
    packages: list[dict[str, str]]
    steps: list[dict[str, Any]]
    base: PulledImage | None


def _parse(text: str, build_args: Mapping[str, str],
           images: Mapping[str, PulledImage] | None = None) -> cf.Containerfile:
    def base_env(ref: str) -> dict[str, str]:
        image = (images or {}).get(ref)
        env = (image.config.get("config") or {}).get("Env") or [] if image else []
        return dict(item.partition("=")[::2] for item in env)
    try:
        return cf.parse_containerfile(text, build_args=build_args,
                                      base_env=base_env if images is not None else None)
    except cf.ContainerfileError as exc:
        raise BuildError(exc.message, line=exc.line) from exc


def _stage_named(parsed: cf.Containerfile, ref: str, before: int) -> cf.Stage | None:
    for stage in parsed.stages[:before]:
        if stage.name == ref.lower() or str(stage.index) == ref:
            return stage
    return None


def _needed(parsed: cf.Containerfile, target: cf.Stage) -> tuple[list[cf.Stage], list[str]]:
    """Stages the target depends on (file order) and the image references they name."""
    stages: dict[int, cf.Stage] = {}
    images: list[str] = []
    pending = [target]
    while pending:
        stage = pending.pop()
        if stage.index in stages:
            continue
        stages[stage.index] = stage
        refs = [stage.base] + [ins.from_stage for ins in stage.instructions
                               if isinstance(ins, cf.Copy) and ins.from_stage is not None]
        for ref in refs:
            dep = _stage_named(parsed, ref, stage.index)
            if dep is not None and (ref != stage.base or dep.name == ref.lower()):
                pending.append(dep)
            elif ref != "scratch":
                images.append(ref)
    return [stages[i] for i in sorted(stages)], list(dict.fromkeys(images))


async def plan_build(source: Source, opts: BuildOptions, puller: Puller,
                     registry_url: str) -> Plan:
    text = source.containerfile.read_text(encoding="utf-8")
    first = _parse(text, opts.build_args)
    if opts.target is None:
        target = first.stages[-1]
    else:
        try:
            target = first.stage(opts.target)
        except KeyError:
            raise BuildError(f"--target {opts.target}: no such stage") from None
    _, refs = _needed(first, target)
    images: dict[str, PulledImage] = {}
    for ref in refs:
        parsed_ref = parse_image_ref(ref)
        if not same_registry(parsed_ref, registry_url):
            raise BuildError(f"{ref}: only images of the strata registry ({registry_url}) can "
                             "be used; import other bases with 'strata base import'")
        images[ref] = await puller.pull(parsed_ref)
    parsed = _parse(text, opts.build_args, images)
    target = parsed.stages[target.index]
    stages, _ = _needed(parsed, target)
    return Plan(source, text, parsed, target, tuple(stages), images,
                own_labels(parsed, target))


def help_file(root: Path) -> Path | None:
    for name in HELP_FILES:
        if (root / name).is_file():
            return root / name
    return None


def build_image(plan: Plan, opts: BuildOptions, work: Path, *, extra_labels: Mapping[str, str],
                log: Callable[[str], None], output: Callable[[bytes], None],
                on_blob: Callable[[BlobRef], None] | None = None) -> LocalBuild:
    """Build the plan's target in *work* (a fresh directory, removed by the caller).
    *on_blob* is told of each layer blob as soon as it is written (on a worker thread)."""
    writer = LayerWriter(work, sde=plan.source.source_date_epoch,
                         compression=opts.compression, level=opts.level, on_blob=on_blob)
    states: dict[int, StageState] = {}
    sde = plan.source.source_date_epoch

    def stage_state(ref: str) -> StageState | None:
        for stage in plan.stages:
            if stage.name == ref.lower() or str(stage.index) == ref:
                return states[stage.index]
        return None

    scratch = Scratch(work, opts.limits) if any(
        isinstance(ins, cf.Run) for stage in plan.stages for ins in stage.instructions) else None
    env = BuildEnv(plan.source, writer, work, sde, opts.network, stage_state,
                   plan.images.__getitem__, log, output, limits=opts.limits, scratch=scratch)
    total = sum(len(stage.instructions) for stage in plan.stages)
    done = 0
    try:
        if scratch is not None:
            log(scratch.describe())
        for stage in plan.stages:
            prior = _stage_named(plan.containerfile, stage.base, stage.index)
            if prior is not None and prior.name == stage.base.lower():
                state = states[prior.index].fork()
            else:
                state = state_from_image(None if stage.base == "scratch"
                                         else plan.images[stage.base])
            log(f"FROM {stage.base}" + (f" AS {stage.name}" if stage.name else ""))
            done = run_stage(env, state, stage, total, done)
            states[stage.index] = state
        final = states[plan.target.index]
        helpdoc = help_file(plan.source.root)
        if helpdoc is not None and not _builds_help(final):
            entry = file_entry(helpdoc, "/help.md", source_date_epoch=sde, mode=0o644)
            slot = writer.entry_slot(merge_entries([entry], parent_mtime=sde))
            slot.history = {"created": iso(sde),
                            "created_by": f"COPY {helpdoc.name} /help.md # strata: help file"}
            final.history.append(slot.history)
            final.slots.append(slot)
        base = final.bases[0] if final.bases else None
        image = assemble(final, sde=sde, extra_labels=extra_labels,
                         base_name=base.reference if base else None,
                         base_digest=base.digest if base else None)
        packages = os_packages(final.view())
        return LocalBuild(image, packages, env.step_logs, base)
    finally:
        writer.close()  # waits for the layers being written from the directories
        if scratch is not None:
            scratch.close()


def _builds_help(state: StageState) -> bool:
    """Whether a layer this build made (not a base image's) already puts ``/help.md`` in
    the image (``COPY help.md /help.md``): then no help-file layer is added."""
    built = [slot.fs for slot in reversed(state.slots) if slot.history is not None]
    node = MergedView(built).lookup("/help.md")
    return node is not None and node.kind != "dir"


def remove_work(work: Path, *, background: bool = False) -> None:
    """Remove a work directory.  In the background, a detached ``rm -rf`` does it after
    the command has answered: freeing thousands of written-back files is slow on disks
    mounted with online discard, and nobody waits for it."""
    if background and shutil.which("rm"):
        subprocess.run(["sh", "-c", 'rm -rf -- "$1" </dev/null >/dev/null 2>&1 &', "sh",
                        os.fspath(work)], check=False)
        return
    shutil.rmtree(work, ignore_errors=True)
