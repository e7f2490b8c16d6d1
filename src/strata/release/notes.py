"""Release notes, in JSON and Markdown (pure: built from what a publish did).

Per image: the builds released (NVR, digest, advisories, reasons), every tag that moved
(stream, old NVR -> new NVR, old and new digest), the tags left alone and why, a one-line
``old NVR -> new NVR`` summary, and the pull commands for every tag that moved.
The JSON is the source; :func:`render_markdown` renders it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from strata.release.model import Build, Release, iso_time
from strata.release.nvr import NVR
from strata.release.streams import NAME_TAG, StreamPlan

__all__ = ["ImageChanges", "build_notes", "render_markdown"]


@dataclass(frozen=True)
class ImageChanges:
    """What one release did to one repository."""

    repository: str
    builds: tuple[Build, ...]
    plan: StreamPlan


def _nvr(nvr: NVR | None) -> str | None:
    return None if nvr is None else str(nvr)


def _image_notes(change: ImageChanges, release: Release, host: str) -> dict[str, Any]:
    newest = max(change.builds, key=lambda b: _Order(b.nvr))
    summary_move = change.plan.move_for(newest.nvr.version) or change.plan.move_for(NAME_TAG)
    advisories = sorted({*release.advisories, *(a for b in change.builds for a in b.advisories)})
    reasons = [x for x in [release.reason, *(b.reason for b in change.builds)] if x]
    moved = [m.tag for m in change.plan.moves]
    return {
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
    }


class _Order:
    """Sort key: rpm order of version-release."""

    def __init__(self, nvr: NVR) -> None:
        self.nvr = nvr

    def __lt__(self, other: _Order) -> bool:
        return self.nvr.compare(other.nvr) < 0


def build_notes(release: Release, changes: Sequence[ImageChanges], host: str) -> dict[str, Any]:
    """The JSON release notes of a published release."""
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
    }


def _short(value: str | None) -> str:
    return "—" if value is None else value


def _tag_of(nvr: str | None) -> str:
    if nvr is None:
        return "—"
    parts = nvr.rsplit("-", 2)
    return f"{parts[-2]}-{parts[-1]}" if len(parts) == 3 else nvr


def render_markdown(notes: dict[str, Any]) -> str:
    """Markdown for people: a section per image with a table of tag moves."""
    kind = "Out-of-band security release" if notes["kind"] == "oob" else "Scheduled release"
    lines = [f"# Release {notes['release']}", "",
             f"{kind} of namespace `{notes['namespace']}`, published "
             f"{_short(notes['published_at'])} by {_short(notes['actor'])}."]
    if notes["advisories"]:
        lines += ["", "Advisories: " + ", ".join(notes["advisories"])]
    if notes["reason"]:
        lines += ["", f"Reason: {notes['reason']}"]
    if not notes["images"]:
        lines += ["", "No images changed in this release."]
    for image in notes["images"]:
        old = image["old_nvr"] or "(new)"
        lines += ["", f"## {image['repository']}", "", f"{old} → {image['new_nvr']}", ""]
        if image["tags"]:
            lines += ["| tag | stream | from | to |", "| --- | --- | --- | --- |"]
            lines += [f"| `{m['tag']}` | {m['stream']} | {_tag_of(m['old_nvr'])} | "
                      f"{_tag_of(m['new_nvr'])} |" for m in image["tags"]]
        if image["skipped"]:
            lines.append("")
        for skip in image["skipped"]:
            lines.append(f"- `{skip['tag']}` unchanged: {skip['reason']}")
        if image["advisories"] and image["advisories"] != notes["advisories"]:
            lines += ["", "Advisories: " + ", ".join(image["advisories"])]
        for reason in image["reasons"]:
            if reason != notes["reason"]:
                lines += ["", f"Reason: {reason}"]
        if image["pull"]:
            lines += ["", "```", *image["pull"], "```"]
    return "\n".join(lines) + "\n"
