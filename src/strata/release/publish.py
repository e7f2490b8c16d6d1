"""The transactional core of a release: plan every repository, then move every tag, at once.

:func:`apply_release` runs inside the caller's single transaction. It locks the images of the
release (row locks on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` already serialises writers),
reads what every tag points to, plans each repository with the rule book
(:func:`strata.release.streams.plan_release`), refuses the whole release if any repository
breaks a rule or lost a build's manifest, and only then writes: tags (straight into the
registry's ``tags`` table, each with its ``tag_events`` row), the builds' status, the release
items, the notes and the webhook outbox. Commit makes all of it visible together; any exception
(or a crash) before commit leaves none of it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import groupby
from typing import Any

import sqlalchemy as sa

from strata.release import store
from strata.release.model import Build, Release, conflict
from strata.release.notes import ImageChanges, build_notes, render_markdown
from strata.release.streams import Candidate, StreamPlan, StreamViolation, plan_release
from strata.release.webhooks import enqueue

TagWriteHook = Callable[[str, str], None]
"""Called after each tag write inside the publish transaction (tests inject faults here)."""


@dataclass(frozen=True)
class RepoPlan:
    repository: str
    builds: tuple[Build, ...]
    plan: StreamPlan | None
    problem: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"repository": self.repository,
                               "builds": [b.to_json() for b in self.builds],
                               "problem": self.problem, "moves": [], "skips": []}
        if self.plan is not None:
            out["moves"] = [{"tag": m.tag, "stream": m.kind.value,
                             "old_digest": m.old_digest, "new_digest": m.new_digest,
                             "old_nvr": str(m.old_nvr) if m.old_nvr else None,
                             "new_nvr": str(m.new_nvr)} for m in self.plan.moves]
            out["skips"] = [{"tag": s.tag, "reason": s.reason} for s in self.plan.skips]
        return out


def plan_repository(conn: sa.Connection, repository: str, builds: Sequence[Build]) -> RepoPlan:
    """Plan releasing ``builds`` (all of ``repository``) against the current tags."""
    image = store.get_image(conn, repository)
    name = image.name if image is not None else repository.rsplit("/", 1)[-1]
    rid = store.repository_id(conn, repository)
    digests = store.tag_digests(conn, rid) if rid is not None else {}
    missing = [b for b in builds if rid is None or not store.has_manifest(conn, rid, b.digest)]
    if missing:
        return RepoPlan(repository, tuple(builds), None,
                        f"manifest-missing: {', '.join(str(b.nvr) for b in missing)} "
                        f"no longer in the registry")
    states = store.tag_states(conn, repository, name, digests)
    try:
        plan = plan_release(states, [Candidate(b.nvr, b.digest) for b in builds],
                            store.eol_versions(conn, repository))
    except StreamViolation as violation:
        return RepoPlan(repository, tuple(builds), None, f"{violation.rule}: {violation}")
    return RepoPlan(repository, tuple(builds), plan)


def plan_builds(conn: sa.Connection, builds: Sequence[Build]) -> list[RepoPlan]:
    ordered = sorted(builds, key=lambda b: b.repository)
    return [plan_repository(conn, repo, list(group))
            for repo, group in groupby(ordered, key=lambda b: b.repository)]


def apply_release(conn: sa.Connection, release: Release, builds: Sequence[Build], *,
                  at: float, host: str, after_write: TagWriteHook | None = None,
                  ) -> dict[str, Any]:
    """Publish ``builds`` as ``release`` (already claimed in this transaction); the notes."""
    store.lock_images(conn, (b.repository for b in builds))
    plans = plan_builds(conn, builds)
    problems = [f"{p.repository}: {p.problem}" for p in plans if p.problem]
    if problems:
        raise conflict(f"release {release.name} cannot be published: {'; '.join(problems)}",
                       {"release": release.name, "problems": problems})
    actor = release.actor or "release-engine"
    for repo_plan in plans:
        assert repo_plan.plan is not None
        rid = store.repository_id(conn, repo_plan.repository)
        assert rid is not None
        for move in repo_plan.plan.moves:
            store.write_tag(conn, rid, move.tag, move.new_digest, at, actor=actor,
                            release=release.name, reason=release.reason)
            if after_write is not None:
                after_write(repo_plan.repository, move.tag)
    store.mark_released(conn, builds, release.name)
    changes = [ImageChanges(p.repository, p.builds, p.plan) for p in plans
               if p.plan is not None]
    notes = build_notes(release, changes, host)
    store.store_notes(conn, release.name, notes, render_markdown(notes))
    enqueue(conn, "release.published", notes, at)
    return notes
