"""Release notes, in JSON and Markdown (pure: built from what a publish did).

Per image: the builds released (NVR, digest, advisories, reasons), every tag that moved
(stream, old NVR -> new NVR, old and new digest), the tags left alone and why, a one-line
``old NVR -> new NVR`` summary, the pull commands for every tag that moved, and whether the
release moved any stream for it (a build not newer than its stream's current release gets
only its NVR tag), and what changed since the image's previous release when its build
recorded its inputs (``rebuild``: the base, old -> new NVR and digest, and every package whose
version changed). The builds a release had to leave out (``left_out``) are listed with why.
The JSON is the source; :func:`render_markdown` renders it.

Much of the text is user input (a candidate's reason and advisories, a release's reason and
name, account names, NVRs from image labels). The JSON keeps it as given; the Markdown shows it
as text and nothing else: every such value is folded onto one line (so it cannot start a
heading, a list or a code fence, nor leave its image's section) and its Markdown punctuation
is backslash-escaped and ``< > &`` turned into entities (so no link, emphasis, code span or raw
HTML such as ``<img onerror=…>`` reaches a renderer). Code spans and the pull-command block
carry only names the registry validated (repositories, tags).
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from strata.release.model import Build, Release, iso_time
from strata.release.nvr import NVR
from strata.release.streams import NAME_TAG, StreamPlan, TagKind

__all__ = ["ImageChanges", "build_notes", "markdown_text", "render_markdown"]

# Inline Markdown punctuation (CommonMark + GFM tables and strikethrough). Block syntax (#, -,
# +, >, digits + '.', fences, setext underlines) only counts at the start of a line, which user
# text never reaches once folded; '#' is escaped anyway so no heading can be read into it.
_MD_PUNCTUATION = re.compile(r"([\\`*_\[\]{}()#!|~^])")


@dataclass(frozen=True)
class ImageChanges:
    """What one release did to one repository."""

    repository: str
    builds: tuple[Build, ...]
    plan: StreamPlan
    rebuild: dict[str, Any] | None = None  # strata.release.rebuild.rebuild_note


def _nvr(nvr: NVR | None) -> str | None:
    return None if nvr is None else str(nvr)


def _image_notes(change: ImageChanges, release: Release, host: str) -> dict[str, Any]:
    newest = max(change.builds, key=lambda b: _Order(b.nvr))
    summary_move = change.plan.move_for(newest.nvr.version) or change.plan.move_for(NAME_TAG)
    advisories = sorted({*release.advisories, *(a for b in change.builds for a in b.advisories)})
    reasons = [x for x in [release.reason, *(b.reason for b in change.builds)] if x]
    moved = [m.tag for m in change.plan.moves]
    return {
        "streams_moved": any(m.kind is not TagKind.NVR for m in change.plan.moves),
        "moved_nothing": not moved,
        "repository": change.repository,
        "old_nvr": _nvr(summary_move.old_nvr) if summary_move else None,
        "new_nvr": str(newest.nvr),
        "builds": [{"nvr": str(b.nvr), "digest": b.digest, "advisories": list(b.advisories),
                    "reason": b.reason} for b in change.builds],
        "tags": [{"tag": m.tag, "stream": m.kind.value, "old_nvr": _nvr(m.old_nvr),
                  "new_nvr": str(m.new_nvr), "old_digest": m.old_digest,
                  "new_digest": m.new_digest} for m in change.plan.moves],
        "skipped": [{"tag": s.tag, "reason": s.reason} for s in change.plan.skips],
        "advisories": advisories,
        "reasons": list(dict.fromkeys(reasons)),
        "pull": [f"podman pull {host}/{change.repository}:{tag}" for tag in moved],
        "rebuild": change.rebuild,
    }


class _Order:
    """Sort key: rpm order of version-release."""

    def __init__(self, nvr: NVR) -> None:
        self.nvr = nvr

    def __lt__(self, other: _Order) -> bool:
        return self.nvr.compare(other.nvr) < 0


def build_notes(release: Release, changes: Sequence[ImageChanges], host: str, *,
                left_out: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """The JSON release notes of a published release.

    ``left_out``: the pending builds the release could not use (repository, nvr, digest,
    reason); they stay pending."""
    return {
        "release": release.name,
        "kind": release.kind.value,
        "namespace": release.namespace,
        "scheduled_for": release.scheduled_for.isoformat() if release.scheduled_for else None,
        "published_at": iso_time(release.published_at),
        "actor": release.actor,
        "advisories": list(release.advisories),
        "reason": release.reason,
        "images": [_image_notes(c, release, host)
                   for c in sorted(changes, key=lambda c: c.repository) if c.builds],
        "left_out": list(left_out),
    }


def markdown_text(value: object) -> str:
    """``value`` as inline Markdown text: one line, punctuation escaped, no HTML."""
    folded = " ".join(str(value).split())
    return _MD_PUNCTUATION.sub(r"\\\1", html.escape(folded, quote=False))


def _code(value: str) -> str:
    """A code span of a registry-validated name (tags, repositories)."""
    return "`" + " ".join(value.replace("`", "").split()) + "`"


def _short(value: str | None) -> str:
    return "—" if value is None else markdown_text(value)


def _tag_of(nvr: str | None) -> str:
    if nvr is None:
        return "—"
    parts = nvr.rsplit("-", 2)
    return markdown_text(f"{parts[-2]}-{parts[-1]}" if len(parts) == 3 else nvr)


def _list(values: Sequence[str]) -> str:
    return ", ".join(markdown_text(v) for v in values)


def _rebuild_lines(rebuild: dict[str, Any]) -> list[str]:
    """The base change (old -> new base NVR, digests) and the package changes of a build."""
    lines: list[str] = []
    base = rebuild.get("base")
    if base:
        stream = base["repository"] + (f":{base['tag']}" if base.get("tag") else "")
        lines += ["", f"Base {_code(stream)}: {_short(base['old_nvr'] or base['old_digest'])} "
                  f"→ {_short(base['new_nvr'] or base['new_digest'])} "
                  f"({_short(base['old_digest'])} → {_short(base['new_digest'])})"]
    if rebuild.get("packages"):
        lines += ["", "Packages changed:", ""]
        lines += [f"- {markdown_text(p['name'])} "
                  f"{markdown_text(p['old']) if p['old'] is not None else '(new)'} → "
                  f"{markdown_text(p['new']) if p['new'] is not None else '(removed)'}"
                  for p in rebuild["packages"]]
    return lines


def render_markdown(notes: dict[str, Any]) -> str:
    """Markdown for people: a section per image with a table of tag moves.

    Every value that came from a user goes through :func:`markdown_text`."""
    kind = "Out-of-band security release" if notes["kind"] == "oob" else "Scheduled release"
    lines = [f"# Release {markdown_text(notes['release'])}", "",
             f"{kind} of namespace {_code(notes['namespace'])}, published "
             f"{_short(notes['published_at'])} by {_short(notes['actor'])}."]
    if notes["advisories"]:
        lines += ["", "Advisories: " + _list(notes["advisories"])]
    if notes["reason"]:
        lines += ["", f"Reason: {markdown_text(notes['reason'])}"]
    if not notes["images"]:
        lines += ["", "No images changed in this release."]
    for image in notes["images"]:
        old = _short(image["old_nvr"]) if image["old_nvr"] else "(new)"
        lines += ["", f"## {markdown_text(image['repository'])}", "",
                  f"{old} → {markdown_text(image['new_nvr'])}", ""]
        if image["tags"]:
            lines += ["| tag | stream | from | to |", "| --- | --- | --- | --- |"]
            lines += [f"| {_code(m['tag'])} | {markdown_text(m['stream'])} | "
                      f"{_tag_of(m['old_nvr'])} | {_tag_of(m['new_nvr'])} |"
                      for m in image["tags"]]
        if image.get("rebuild"):
            lines += _rebuild_lines(image["rebuild"])
        if image.get("moved_nothing"):
            lines += ["", "This release moved nothing for this image (why, per tag, below)."]
        elif not image.get("streams_moved", True):
            lines += ["", "No stream moved for this image: only its Name-Version-Release tag "
                      "was published (why the streams stayed, below)."]
        if image["skipped"]:
            lines.append("")
        for skip in image["skipped"]:
            lines.append(f"- {_code(skip['tag'])} unchanged: {markdown_text(skip['reason'])}")
        if image["advisories"] and image["advisories"] != notes["advisories"]:
            lines += ["", "Advisories: " + _list(image["advisories"])]
        for reason in image["reasons"]:
            if reason != notes["reason"]:
                lines += ["", f"Reason: {markdown_text(reason)}"]
        if image["pull"]:
            lines += ["", "```", *(" ".join(p.replace("`", "").split())
                                   for p in image["pull"]), "```"]
    if notes.get("left_out"):
        lines += ["", "## Left out", "",
                  "These pending builds could not be released; they stay pending "
                  "(fix or withdraw them):", ""]
        lines += [f"- {markdown_text(x['repository'])} {markdown_text(x['nvr'])} "
                  f"({markdown_text(x['digest'])}): {markdown_text(x['reason'])}"
                  for x in notes["left_out"]]
    return "\n".join(lines) + "\n"
