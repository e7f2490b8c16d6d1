"""Label policy (Fedora container guidelines) and the release number the system picks.

The guidelines ask every layered image to carry, set by its own Containerfile (labels
inherited from the base image describe the base, not this image):

* ``name`` -- the image name, ``$FGC/cockpit`` or ``cockpit``;
* ``version`` -- the version of the main software;
* ``summary`` -- a one-line description;
* ``maintainer`` (or ``com.redhat.component``, the component it is built from);
* ``usage`` or ``run`` -- how to run it.

``release`` is set by the build system: the next free number for that ``name-version``
in the namespace, followed by the namespace's dist tag (``1.f25docker``, then
``2.f25docker`` for a rebuild).  Numbers already used are read from the registry
(immutable ``V-N.disttag`` tags of released builds) and from the registered candidates.
An explicit ``LABEL release=N`` (or ``N.<dist tag>``) is honoured when ``N`` is higher
than every number already used for that version; otherwise the build is refused with
the numbers taken and the next free one (:func:`explicit_release`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from strata.build import containerfile as cf
from strata.release.nvr import NVR, InvalidNVR

__all__ = ["REQUIRED_LABELS", "LabelReport", "ReleaseRefused", "check_labels",
           "explicit_release", "next_release", "own_labels", "release_string", "split_name",
           "used_numbers"]

REQUIRED_LABELS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("name",), 'the image name, e.g. name="$FGC/cockpit"'),
    (("version",), 'the version of the main software, e.g. version="130"'),
    (("summary",), "a one-line description of the image"),
    (("maintainer", "com.redhat.component"), 'who maintains it, e.g. maintainer="Jane <j@x>"'),
    (("usage", "run"), 'how to run it, e.g. usage="podman run -d f25/cockpit"'),
)


@dataclass(frozen=True)
class LabelReport:
    labels: dict[str, str]
    problems: tuple[str, ...]
    warnings: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    def text(self) -> str:
        lines = []
        if self.problems:
            lines.append(f"label policy (Fedora container guidelines): "
                         f"{len(self.problems)} problem(s)")
            lines += [f"  - {problem}" for problem in self.problems]
        for warning in self.warnings:
            lines.append(f"  warning: {warning}")
        return "\n".join(lines)


def own_labels(containerfile: cf.Containerfile, target: cf.Stage) -> dict[str, str]:
    """Labels the Containerfile itself sets for *target* (through ``FROM <stage>`` chains)."""
    chain: list[cf.Stage] = []
    stage: cf.Stage | None = target
    while stage is not None and stage not in chain:
        chain.append(stage)
        base = stage.base.lower()
        stage = next((s for s in containerfile.stages[: stage.index] if s.name == base), None)
    labels: dict[str, str] = {}
    for item in reversed(chain):
        for ins in item.instructions:
            if isinstance(ins, cf.Label):
                labels.update(ins.pairs)
    return labels


def split_name(name: str) -> tuple[str | None, str]:
    """``f25/cockpit`` -> (``f25``, ``cockpit``); ``cockpit`` -> (None, ``cockpit``)."""
    namespace, _, short = name.rpartition("/")
    return namespace or None, short


def check_labels(labels: Mapping[str, str], *, help_file: str | None) -> LabelReport:
    problems: list[str] = []
    warnings: list[str] = []
    for keys, what in REQUIRED_LABELS:
        if not any(labels.get(key, "").strip() for key in keys):
            names = " or ".join(repr(k) for k in keys)
            problems.append(f"missing label {names}: {what}")
    name, version = labels.get("name", "").strip(), labels.get("version", "").strip()
    if name and version:
        _, short = split_name(name)
        try:
            nvr = NVR(short, version, "1")
            problem = nvr.tag_safety_problem()
            if problem:
                problems.append(f"labels name/version cannot form tags: {problem}")
        except InvalidNVR as exc:
            problems.append(f"labels name/version are not a valid NVR: {exc}")
        if not re.fullmatch(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*", short):
            problems.append(f"label name={name!r}: {short!r} is not a valid repository name "
                            "(lower-case letters, digits, '.', '_', '-')")
    if help_file is None:
        warnings.append("no help.md or README.md in the source: the image has no /help.md")
    return LabelReport(dict(labels), tuple(problems), tuple(warnings))


def used_numbers(version: str, dist_tag: str, tags: Iterable[str],
                 releases: Iterable[str]) -> list[int]:
    """Release numbers already used for *version*: from ``V-N[.dist_tag]`` tags and the
    releases ``N[.dist_tag]`` of registered builds (sorted, unique)."""
    suffix = rf"\.{re.escape(dist_tag)}" if dist_tag else ""
    tag_re = re.compile(rf"{re.escape(version)}-(\d+){suffix}")
    release_re = re.compile(rf"(\d+){suffix}")
    used = [int(m.group(1)) for tag in tags if (m := tag_re.fullmatch(tag))]
    used += [int(m.group(1)) for rel in releases if (m := release_re.fullmatch(rel))]
    return sorted(set(used))


def release_string(number: int, dist_tag: str) -> str:
    """``N.dist_tag`` (``N`` without a dist tag)."""
    return f"{number}.{dist_tag}" if dist_tag else str(number)


def next_release(version: str, dist_tag: str, tags: Iterable[str],
                 releases: Iterable[str]) -> str:
    """The first release ``N[.dist_tag]`` above every one already used for *version*."""
    used = used_numbers(version, dist_tag, tags, releases)
    return release_string(max(used, default=0) + 1, dist_tag)


def explicit_release(value: str, version: str, dist_tag: str, used: Iterable[int]) -> str:
    """The release an explicit ``LABEL release=VALUE`` asks for, as ``N[.dist_tag]``.

    *value* is ``N`` or ``N.<dist_tag>``; ``N`` must be higher than every number in
    *used* (the numbers already taken for *version*).  Raises :class:`ReleaseRefused`.
    """
    taken = sorted(set(used))
    following = max(taken, default=0) + 1
    text = value.strip()
    suffix = f".{dist_tag}" if dist_tag else ""
    digits = text[: -len(suffix)] if suffix and text.endswith(suffix) else text
    if not re.fullmatch(r"[1-9]\d{0,8}", digits):
        raise ReleaseRefused(
            f"label release={value!r}: give a release number (release=\"{following}\"); "
            f"the build appends the dist tag" + (f" (.{dist_tag})" if dist_tag else ""))
    number = int(digits)
    if number <= max(taken, default=0):
        numbers = ", ".join(str(n) for n in taken)
        raise ReleaseRefused(
            f"label release={value!r}: release {number} of version {version} is not free "
            f"and higher than every release of it: numbers taken: {numbers}; "
            f"the next free one is {following} (release=\"{following}\", or drop the "
            "label and the build picks it)")
    return release_string(number, dist_tag)


class ReleaseRefused(ValueError):
    """An explicit ``LABEL release=`` that cannot be used (the message says why)."""
