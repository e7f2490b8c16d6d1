"""The transactional core of a release: plan every repository, then move every tag, at once.

:func:`apply_release` runs inside the caller's single write transaction (a
:class:`strata.meta.release_store.ReleaseWriter`). It locks the images of the release (row
locks on PostgreSQL; SQLite's writers are serialised already), reads what every tag points to,
plans each repository with the rule book (:func:`strata.release.streams.plan_release`), leaves
out the builds it cannot release (their manifest or one of its blobs is gone, their NVR tag
points elsewhere; a repository whose usable builds together break a rule is left out whole) --
they stay pending and the notes name them, so one broken build never blocks the rest of the
namespace (an out-of-band release, whose builds the caller named, is refused instead) -- and
only then writes, in one store call (:meth:`ReleaseWriter.publish`): tags (straight into the
registry's ``tags`` table, each with its ``tag_events`` row), the builds' status, the release
items, the notes (with each rebuilt image's base and package changes), the webhook outbox and
the rebuilds of every image built on a stream it moved; then the signer (if any) signs every
released manifest digest in the same transaction (:class:`ReleaseSigner`). Commit makes all of
it visible together; any exception (or a crash) before commit leaves none of it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import groupby
from typing import Any, Protocol

from strata.meta.release_store import ReleaseReader, ReleaseWriter
from strata.release.model import Build, Namespace, Release, RepositoryTags, TagMove, conflict
from strata.release.notes import ImageChanges, build_notes, render_markdown
from strata.release.streams import (
    Candidate,
    StreamPlan,
    StreamViolation,
    TagState,
    plan_release,
)
from strata.release.tagstates import tag_states

TagWriteHook = Callable[[str, str], None]
"""Called after each tag write inside the publish transaction (tests inject faults here)."""


class ReleaseSigner(Protocol):
    """Signs what a release publishes (:class:`strata.trust.signer.TrustSigner`).

    ``prepare`` runs before the publish transaction, for every build it may release (the
    signature blobs are pushed then); ``sign`` runs inside it, after the release's writes,
    for the builds it did release -- so a signature is committed with the release, or not
    at all."""

    async def prepare(self, builds: Sequence[Build]) -> None: ...

    def sign(self, tx: ReleaseWriter, release: Release, builds: Sequence[Build],
             at: float) -> None: ...


@dataclass(frozen=True)
class LeftOut:
    """A pending build a release cannot use, and why (it stays pending)."""

    build: Build
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"repository": self.build.repository, "digest": self.build.digest,
                "nvr": str(self.build.nvr), "reason": self.reason}


@dataclass(frozen=True)
class RepoPlan:
    """The plan of one repository: the builds it releases, and those it leaves out."""

    repository: str
    builds: tuple[Build, ...]
    plan: StreamPlan | None
    problem: str | None = None
    left_out: tuple[LeftOut, ...] = ()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"repository": self.repository,
                               "builds": [b.to_json() for b in self.builds],
                               "problem": self.problem, "moves": [], "skips": [],
                               "left_out": [x.to_json() for x in self.left_out]}
        if self.plan is not None:
            out["moves"] = [{"tag": m.tag, "stream": m.kind.value,
                             "old_digest": m.old_digest, "new_digest": m.new_digest,
                             "old_nvr": str(m.old_nvr) if m.old_nvr else None,
                             "new_nvr": str(m.new_nvr)} for m in self.plan.moves]
            out["skips"] = [{"tag": s.tag, "reason": s.reason} for s in self.plan.skips]
        return out


def _usable(tx: ReleaseReader, repo: RepositoryTags, states: Mapping[str, TagState],
            build: Build) -> str | None:
    """Why ``build`` cannot be released on its own, or None."""
    if not repo.exists or not tx.has_manifest(repo.repository, build.digest):
        return (f"manifest-missing: {build.digest} is no longer in the registry (push the "
                "same bytes again, or withdraw the build)")
    missing = tx.missing_content(repo.repository, build.digest)
    if missing:
        return (f"content-missing: {', '.join(missing)} of {build.digest} no longer in the "
                "repository (push it again, or withdraw the build)")
    try:
        plan_release(states, [Candidate(build.nvr, build.digest)], set(repo.eol))
    except StreamViolation as violation:
        return f"{violation.rule}: {violation}"
    return None


@dataclass(frozen=True)
class ScheduledDate:
    day: dt.date
    name: str
    due: bool

    def to_json(self) -> dict[str, Any]:
        return {"date": self.day.isoformat(), "name": self.name, "due": self.due}


@dataclass(frozen=True)
class NamespacePlan:
    """A namespace's next scheduled dates and what its next release would do: the plan of
    every repository with active pending builds, and the builds that wait (image not active)."""

    namespace: Namespace
    last_published: dt.date | None
    next: tuple[ScheduledDate, ...]
    release: str
    images: tuple[RepoPlan, ...]
    waiting: tuple[Build, ...]

    def to_json(self) -> dict[str, Any]:
        return {"namespace": self.namespace.to_json(),
                "last_published": self.last_published.isoformat()
                if self.last_published else None,
                "next": [d.to_json() for d in self.next], "release": self.release,
                "images": [p.to_json() for p in self.images],
                "waiting": [b.to_json() for b in self.waiting]}


def repository_tags(tx: ReleaseReader, repository: str) -> RepositoryTags:
    """The tags, build NVRs and end-of-life versions of ``repository``."""
    image = tx.image(repository)
    name = image.name if image is not None else repository.rsplit("/", 1)[-1]
    return tx.repository_tags(repository, name)


def plan_repository(tx: ReleaseReader, repository: str, builds: Sequence[Build]) -> RepoPlan:
    """Plan releasing ``builds`` (all of ``repository``) against the current tags.

    A build that cannot be released (its manifest or a blob of it is gone, its NVR tag points
    elsewhere) is left out with the reason; if the usable builds together break a rule (two
    that rpm cannot order), the repository is left out as a whole (``problem``)."""
    repo = repository_tags(tx, repository)
    states = tag_states(repo)
    eol = set(repo.eol)
    usable: list[Build] = []
    left_out: list[LeftOut] = []
    for build in builds:
        reason = _usable(tx, repo, states, build)
        if reason is None:
            usable.append(build)
        else:
            left_out.append(LeftOut(build, reason))
    if not usable:
        return RepoPlan(repository, (), None, None, tuple(left_out))
    try:
        plan = plan_release(states, [Candidate(b.nvr, b.digest) for b in usable], eol)
    except StreamViolation as violation:
        return RepoPlan(repository, tuple(usable), None, f"{violation.rule}: {violation}",
                        tuple(left_out))
    return RepoPlan(repository, tuple(usable), plan, None, tuple(left_out))


def plan_builds(tx: ReleaseReader, builds: Sequence[Build]) -> list[RepoPlan]:
    ordered = sorted(builds, key=lambda b: b.repository)
    return [plan_repository(tx, repo, list(group))
            for repo, group in groupby(ordered, key=lambda b: b.repository)]


def apply_release(tx: ReleaseWriter, release: Release, builds: Sequence[Build], *,
                  at: float, host: str, after_write: TagWriteHook | None = None,
                  strict: bool = False, signer: ReleaseSigner | None = None) -> dict[str, Any]:
    """Publish ``builds`` as ``release`` (already claimed in this transaction); the notes.

    Builds that cannot be released are left out (they stay pending) and named in the notes;
    with ``strict`` (an out-of-band release, whose builds were named by the caller) any such
    build refuses the whole release instead."""
    tx.lock_images(b.repository for b in builds)
    plans = plan_builds(tx, builds)
    left_out = [x for p in plans for x in p.left_out]
    left_out += [LeftOut(b, p.problem) for p in plans if p.problem for b in p.builds]
    if strict and left_out:
        problems = list(dict.fromkeys(f"{x.build.repository}: {x.reason}" for x in left_out))
        raise conflict(f"release {release.name} cannot be published: {'; '.join(problems)}",
                       {"release": release.name, "problems": problems})
    moves = [TagMove(p.repository, move.tag, move.new_digest)
             for p in plans if p.plan is not None for move in p.plan.moves]
    released = [b for p in plans if p.plan is not None for b in p.builds]
    rebuilt = tx.rebuild_notes([(p.repository, _newest(p.builds).digest) for p in plans
                                if p.plan is not None and p.builds])
    changes = [ImageChanges(p.repository, p.builds, p.plan, rebuilt.get(p.repository))
               for p in plans if p.plan is not None]
    notes = build_notes(release, changes, host,
                        left_out=[x.to_json() for x in left_out])
    tx.publish(release, moves, released, notes, render_markdown(notes), at,
               after_write=after_write)
    if signer is not None:
        signer.sign(tx, release, released, at)
    return notes


def _newest(builds: Sequence[Build]) -> Build:
    newest = builds[0]
    for build in builds[1:]:
        if build.nvr.compare(newest.nvr) > 0:
            newest = build
    return newest
