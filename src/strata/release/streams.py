"""The release-stream rule book for one managed image repository (pure: no I/O).

Tag streams
-----------
Every tag of a managed repository belongs to one of three streams (:func:`classify_tag`):

* **Name-Version-Release** (:attr:`TagKind.NVR`), e.g. ``130-1.f25docker``.  RPM versions and
  releases never contain ``-``, so any tag with a ``-`` is one of these.  Written once, never
  moved, never deleted.
* **Name** (:attr:`TagKind.NAME`): the tag ``latest``.  Floats forward to the newest released
  build of the newest supported version.
* **Name-Version** (:attr:`TagKind.VERSION`): any other tag, e.g. ``130``.  Floats forward to
  the newest released build of that version.

"Newer" is always rpm ordering of version then release
(:func:`~strata.release.rpmvercmp.evr_compare`), never time.

Release rules (:func:`plan_release`)
------------------------------------
A release publishes one or more candidate builds (same image name) at once:

1. Every candidate gets its NVR tag.  An NVR tag that already exists with the same digest is
   skipped; with a different digest it is a :class:`StreamViolation` (``nvr-immutable``).
2. Each version tag moves to the newest candidate of that version, but only forward: a
   candidate older than (or rpm-equal to) what the tag points to is skipped.
3. ``latest`` moves to the newest candidate whose version is not end-of-life, again only
   forward.  So a respin of an older version (``129-2.1`` while ``latest`` is ``130-1``) moves
   ``129`` but not ``latest``.
4. End-of-life versions: their version tag is frozen (skipped), and their builds never move
   ``latest``.  Ending the newest version leaves ``latest`` where it is until a build of a
   live version that is newer than it is released.

A floating tag never moves backwards in a release; only an explicit rollback
(:func:`plan_rollback`) does that, and only to an older, already released build (of the same
version, for a version tag).

The plan lists moves and skips in a deterministic order: NVR tags, then version tags, then
``latest``, each group in rpm order of the tag (ties broken by the tag string).

Release-managed repositories
----------------------------
The registry applies these rules to a repository that is *release-managed*: its image is
registered (a row in ``images``), or its first path component is a registered namespace
(``f25/anything``, and the repository ``f25`` itself), so a name cannot be claimed through
``/v2/`` before its image is registered. Other repositories (``demo/busybox``) are free scratch
space. The store reads this inside the writing transaction
(:func:`strata.meta.tagwrite.is_managed`).

The invariant
-------------
**In a release-managed repository every stream tag is written only by the release engine.**
The one place that enforces it on the registry side is the registry's ``TagPolicy``
(:class:`strata.release.policy.ReleaseTagPolicy`), consulted inside every tag-writing and
content-deleting transaction of ``/v2/``, which asks this rule book:

* :func:`check_registry_write` -- a tag write through ``/v2/`` (manifest PUT with a tag, tag
  DELETE, manifest DELETE that removes a tag). Every tag of the stream grammar (NVR,
  Name-Version, ``latest``; i.e. every tag but the cosign / referrers fallback tags
  ``sha256-<hex>[.sig|.att|.sbom]``, which are exempt) is refused with rule
  ``stream-tags-release-only``, for every account. The signature tags ``sha256-<hex>.sig``
  are the release's too: written or removed through ``/v2/`` they are refused with rule
  ``signature-release-only`` (a release signs what it publishes, with the namespace's key),
  and so is any pushed manifest that is a cosign signature (:func:`check_signature_push`). A
  re-push of the digest a tag already has writes nothing and is allowed; deleting a tag that
  does not exist is a no-op. Builds are pushed by digest and registered with ``strata
  candidate add <repo>@<digest>``. The release engine itself (``by_release_engine=True``) may
  move floating tags but never moves or deletes an NVR tag (``nvr-immutable``, ``nvr-no-delete``).
* :func:`check_content_delete` -- a manifest DELETE by digest or a blob DELETE. Content held
  by a build that is pending (``candidate``) or released, or by a manifest carrying a stream
  tag -- the manifest itself, a child manifest of such an index, a blob such a manifest (or
  its child) references -- is refused with rule ``build-protected``. A pending build is taken
  out with ``strata candidate withdraw``; after that its manifest may be deleted or collected.
  Garbage collection is the only way the blobs of released builds leave.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Any, Protocol

from strata.release.nvr import NVR
from strata.release.rpmvercmp import rpmvercmp

__all__ = [
    "NAME_TAG",
    "Candidate",
    "Holder",
    "Rule",
    "Skip",
    "StreamPlan",
    "StreamViolation",
    "TagKind",
    "TagMove",
    "TagState",
    "check_content_delete",
    "check_registry_write",
    "check_signature_push",
    "classify_tag",
    "is_cosign_tag",
    "is_signature_tag",
    "is_stream_tag",
    "plan_release",
    "plan_rollback",
]

NAME_TAG = "latest"


class TagKind(Enum):
    """The stream a tag belongs to."""

    NVR = "Name-Version-Release"
    VERSION = "Name-Version"
    NAME = "Name"


_KIND_RANK = {TagKind.NVR: 0, TagKind.VERSION: 1, TagKind.NAME: 2}


def classify_tag(tag: str) -> TagKind:
    """``latest`` is the Name stream, a tag with ``-`` an NVR tag, anything else a version."""
    if tag == NAME_TAG:
        return TagKind.NAME
    if "-" in tag:
        return TagKind.NVR
    return TagKind.VERSION


class Rule(StrEnum):
    """Names of the rules a :class:`StreamViolation` can break."""

    NVR_IMMUTABLE = "nvr-immutable"
    NVR_NO_DELETE = "nvr-no-delete"
    STREAM_TAGS_RELEASE_ONLY = "stream-tags-release-only"
    SIGNATURES_RELEASE_ONLY = "signature-release-only"
    ATTESTATIONS_RELEASE_ONLY = "attestation-release-only"
    BUILD_PROTECTED = "build-protected"
    SINGLE_NAME = "single-name"
    CANDIDATE_CONFLICT = "candidate-conflict"
    AMBIGUOUS_ORDER = "ambiguous-order"
    TAG_SAFE = "tag-safe"
    ROLLBACK_FLOATING_ONLY = "rollback-floating-only"
    ROLLBACK_UNKNOWN_TAG = "rollback-unknown-tag"
    ROLLBACK_SAME_VERSION = "rollback-same-version"
    ROLLBACK_RELEASED_ONLY = "rollback-released-only"
    ROLLBACK_BACKWARDS_ONLY = "rollback-backwards-only"


class StreamViolation(Exception):
    """A request that breaks a stream rule; ``rule`` names it, ``message`` explains it."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(rule, message)
        self.rule = rule
        self.message = message

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class TagState:
    """What a tag points to now."""

    tag: str
    digest: str
    nvr: NVR


@dataclass(frozen=True)
class Candidate:
    """A build to be released."""

    nvr: NVR
    digest: str


class Pointee(Protocol):
    """Anything naming a build by NVR and digest (:class:`TagState`, :class:`Candidate`)."""

    @property
    def nvr(self) -> NVR: ...

    @property
    def digest(self) -> str: ...


@dataclass(frozen=True)
class TagMove:
    """Create (``old_digest is None``) or move a tag."""

    tag: str
    kind: TagKind
    old_digest: str | None
    new_digest: str
    old_nvr: NVR | None
    new_nvr: NVR


@dataclass(frozen=True)
class Skip:
    """A tag the release leaves alone, and why."""

    tag: str
    reason: str


@dataclass(frozen=True)
class StreamPlan:
    """The tag writes of one release of one repository, in deterministic order."""

    moves: tuple[TagMove, ...]
    skips: tuple[Skip, ...]

    def move_for(self, tag: str) -> TagMove | None:
        return next((move for move in self.moves if move.tag == tag), None)

    def skip_for(self, tag: str) -> Skip | None:
        return next((skip for skip in self.skips if skip.tag == tag), None)


_rpm_key: Callable[[str], Any] = functools.cmp_to_key(rpmvercmp)
_nvr_key: Callable[[NVR], Any] = functools.cmp_to_key(NVR.compare)


def _tag_order(tag: str) -> tuple[int, Any, str]:
    return (_KIND_RANK[classify_tag(tag)], _rpm_key(tag), tag)


def _check_current(current: Mapping[str, TagState]) -> None:
    for tag, state in current.items():
        if state.tag != tag:
            raise ValueError(f"current state for tag {tag!r} describes tag {state.tag!r}")


def _unique_candidates(candidates: Sequence[Candidate]) -> list[Candidate]:
    """Deduplicate and check the candidates; return them newest last."""
    by_nvr: dict[NVR, Candidate] = {}
    for candidate in candidates:
        seen = by_nvr.setdefault(candidate.nvr, candidate)
        if seen.digest != candidate.digest:
            raise StreamViolation(
                Rule.CANDIDATE_CONFLICT,
                f"{candidate.nvr} is given twice, as {seen.digest} and {candidate.digest}",
            )
    unique = sorted(by_nvr.values(), key=lambda c: (_nvr_key(c.nvr), c.nvr.version_release))
    names = sorted({c.nvr.name for c in unique})
    if len(names) > 1:
        raise StreamViolation(
            Rule.SINGLE_NAME,
            f"one release covers one image name, got {', '.join(names)}",
        )
    for candidate in unique:
        problem = candidate.nvr.tag_safety_problem()
        if problem is not None:
            raise StreamViolation(Rule.TAG_SAFE, f"{candidate.nvr}: {problem}")
    for older, newer in itertools.pairwise(unique):
        if older.nvr.compare(newer.nvr) == 0:
            raise StreamViolation(
                Rule.AMBIGUOUS_ORDER,
                f"{older.nvr} and {newer.nvr} are equal in rpm ordering; "
                "cannot tell which one is newer",
            )
    return unique


def _advance(tag: str, kind: TagKind, existing: TagState | None, best: Candidate) -> TagMove | Skip:
    """Move a floating tag to ``best`` if that is forward of where it points now."""
    if existing is None:
        return TagMove(tag, kind, None, best.digest, None, best.nvr)
    if existing.digest == best.digest:
        return Skip(tag, f"already points there ({existing.nvr.version_release})")
    order = best.nvr.compare(existing.nvr)
    if order > 0:
        return TagMove(tag, kind, existing.digest, best.digest, existing.nvr, best.nvr)
    if order < 0:
        return Skip(
            tag,
            f"would move backwards from {existing.nvr.version_release} "
            f"to {best.nvr.version_release}",
        )
    return Skip(
        tag,
        f"{best.nvr.version_release} is not newer than {existing.nvr.version_release}",
    )


def plan_release(
    current: Mapping[str, TagState],
    candidates: Sequence[Candidate],
    eol_versions: AbstractSet[str],
) -> StreamPlan:
    """Plan the tag writes for releasing ``candidates`` into one repository.

    ``current`` maps every existing tag of the repository to what it points to.  Raises
    :class:`StreamViolation` if the release breaks a rule (an existing NVR tag with another
    digest, candidates of different names, the same NVR with two digests, two candidates rpm
    cannot order, an NVR that cannot be a tag); ``ValueError`` if ``current`` is inconsistent.
    """
    _check_current(current)
    unique = _unique_candidates(candidates)
    results: list[TagMove | Skip] = []

    for candidate in unique:
        tag = candidate.nvr.tag
        existing = current.get(tag)
        if existing is None:
            results.append(TagMove(tag, TagKind.NVR, None, candidate.digest, None, candidate.nvr))
        elif existing.digest == candidate.digest:
            results.append(Skip(tag, "already points there"))
        else:
            raise StreamViolation(
                Rule.NVR_IMMUTABLE,
                f"tag {tag} is a Name-Version-Release tag and is immutable: it points to "
                f"{existing.digest}, not {candidate.digest}",
            )

    newest_of_version: dict[str, Candidate] = {}
    for candidate in unique:  # oldest first, so the newest of each version wins
        newest_of_version[candidate.nvr.version] = candidate
    for version, best in newest_of_version.items():
        if version in eol_versions:
            results.append(Skip(version, f"stream {version} is end-of-life"))
        else:
            results.append(_advance(version, TagKind.VERSION, current.get(version), best))

    live = [c for c in unique if c.nvr.version not in eol_versions]
    if live:
        results.append(_advance(NAME_TAG, TagKind.NAME, current.get(NAME_TAG), live[-1]))
    elif unique:
        eol = ", ".join(sorted(newest_of_version, key=_rpm_key))
        results.append(Skip(NAME_TAG, f"every candidate's stream is end-of-life ({eol})"))

    moves = sorted((r for r in results if isinstance(r, TagMove)), key=lambda m: _tag_order(m.tag))
    skips = sorted((r for r in results if isinstance(r, Skip)), key=lambda s: _tag_order(s.tag))
    return StreamPlan(tuple(moves), tuple(skips))


def plan_rollback(current: Mapping[str, TagState], tag: str, target: Pointee) -> TagMove:
    """Plan moving the floating ``tag`` back to ``target``, an older released build.

    Rules: only floating tags (a version tag or ``latest``) that exist can be rolled back; a
    version tag only to a build of that version; the target must be released in this
    repository (its NVR tag points to its digest) and strictly older than what the tag points
    to now (going forward is a release).  Raises :class:`StreamViolation` otherwise.
    """
    _check_current(current)
    kind = classify_tag(tag)
    if kind is TagKind.NVR:
        raise StreamViolation(
            Rule.ROLLBACK_FLOATING_ONLY,
            f"tag {tag} is a Name-Version-Release tag and is immutable; "
            "only floating tags can be rolled back",
        )
    existing = current.get(tag)
    if existing is None:
        raise StreamViolation(Rule.ROLLBACK_UNKNOWN_TAG, f"tag {tag} does not exist")
    if kind is TagKind.VERSION and target.nvr.version != tag:
        raise StreamViolation(
            Rule.ROLLBACK_SAME_VERSION,
            f"tag {tag} is a Name-Version tag and can only point to builds of version {tag}, "
            f"not {target.nvr.version_release}",
        )
    released = current.get(target.nvr.version_release)
    if released is None or released.digest != target.digest:
        raise StreamViolation(
            Rule.ROLLBACK_RELEASED_ONLY,
            f"{target.nvr} ({target.digest}) is not a released build of this repository",
        )
    if target.nvr.compare(existing.nvr) >= 0:
        raise StreamViolation(
            Rule.ROLLBACK_BACKWARDS_ONLY,
            f"a rollback must move tag {tag} backwards, but {target.nvr.version_release} is "
            f"not older than {existing.nvr.version_release}",
        )
    return TagMove(tag, kind, existing.digest, target.digest, existing.nvr, target.nvr)


COSIGN_TAG = re.compile(r"^sha256-[0-9a-f]{64}(?:\.(?:sig|att|sbom))?$")


def is_cosign_tag(tag: str) -> bool:
    """A cosign / referrers-API fallback tag (``sha256-<hex>[.sig|.att|.sbom]``): no stream."""
    return COSIGN_TAG.match(tag) is not None


def is_signature_tag(tag: str) -> bool:
    """A cosign signature tag (``sha256-<hex>.sig``): in a release-managed repository only the
    release writes it (rule ``signature-release-only``)."""
    return is_cosign_tag(tag) and tag.endswith(".sig")


def check_signature_push(is_signature: bool, repository: str = "<namespace>/<name>"
                         ) -> StreamViolation | None:
    """A manifest pushed through ``/v2/`` into a release-managed repository that is a cosign
    signature (a simple-signing payload layer, or the signature artifact type of an OCI 1.1
    referrer): refused, whatever its tag -- only a release signs there."""
    if not is_signature:
        return None
    return StreamViolation(
        Rule.SIGNATURES_RELEASE_ONLY,
        f"signatures in the release-managed repository {repository} are written only by a "
        "release (with the namespace's release key)")


def check_attestation_push(is_attestation: bool, repository: str = "<namespace>/<name>"
                           ) -> StreamViolation | None:
    """A manifest pushed through ``/v2/`` into a release-managed repository whose artifact type
    is one of the release's SBOM or provenance types (CycloneDX JSON, in-toto JSON): refused --
    there, a release attaches them (signed) to what it publishes, and a look at the referrers
    finds only those."""
    if not is_attestation:
        return None
    return StreamViolation(
        Rule.ATTESTATIONS_RELEASE_ONLY,
        f"SBOM and provenance artifacts in the release-managed repository {repository} are "
        "attached only by a release (signed with the namespace's release key)")


def is_stream_tag(tag: str) -> bool:
    """Whether ``tag`` is in the stream grammar (every tag but the cosign fallback tags)."""
    return not is_cosign_tag(tag)


def check_registry_write(
    tag: str,
    existing_digest: str | None,
    new_digest: str | None,
    *,
    by_release_engine: bool,
    repository: str = "<namespace>/<name>",
) -> StreamViolation | None:
    """The registry's write policy for a tag of a release-managed repository.

    ``existing_digest`` is what the tag points to now (None: it does not exist);
    ``new_digest`` is what the write makes it point to (None: the tag is deleted).  Returns the
    violated rule, or None if the write is allowed.  ``repository`` only goes into the message.
    """
    if new_digest is not None and new_digest == existing_digest:
        return None  # re-push of the same digest: writes nothing
    if new_digest is None and existing_digest is None:
        return None  # deleting a tag that does not exist: a no-op
    if is_signature_tag(tag):
        if by_release_engine:
            return None
        return StreamViolation(
            Rule.SIGNATURES_RELEASE_ONLY,
            f"tag {tag} holds the release signatures of {repository}@"
            f"{tag.removesuffix('.sig').replace('-', ':', 1)}, and only a release writes "
            "or removes them")
    if not is_stream_tag(tag):
        return None
    kind = classify_tag(tag)
    if by_release_engine:
        if kind is not TagKind.NVR or existing_digest is None:
            return None
        if new_digest is None:
            return StreamViolation(
                Rule.NVR_NO_DELETE,
                f"tag {tag} is a Name-Version-Release tag and can never be deleted")
        return StreamViolation(
            Rule.NVR_IMMUTABLE,
            f"tag {tag} is a Name-Version-Release tag and is immutable "
            f"(it points to {existing_digest})")
    head = (f"tag {tag} is a {kind.value} stream tag of the release-managed repository "
            f"{repository}, and only the release engine writes stream tags")
    if new_digest is not None:
        return StreamViolation(
            Rule.STREAM_TAGS_RELEASE_ONLY,
            f"{head}: push the build by digest, then register it for the next release with "
            f"`strata candidate add {repository}@{new_digest}`")
    if kind is TagKind.NVR:
        return StreamViolation(
            Rule.STREAM_TAGS_RELEASE_ONLY,
            f"{head}: a Name-Version-Release tag names a released build forever and is never "
            "deleted")
    return StreamViolation(
        Rule.STREAM_TAGS_RELEASE_ONLY,
        f"{head}: releases move it forward; to move it back use `strata release rollback "
        f"{repository}:{tag} --to <older NVR> --reason TEXT`")


class Holder(Protocol):
    """A manifest of the repository that holds content being deleted: the manifest itself, an
    index listing it, or a manifest (or an index of one) referencing the blob."""

    @property
    def digest(self) -> str: ...

    @property
    def build_status(self) -> str | None:
        """The status of its registered build (``candidate``, ``released``, ``withdrawn``)."""

    @property
    def nvr(self) -> str | None: ...

    @property
    def tags(self) -> tuple[str, ...]: ...


PROTECTING_STATUSES = frozenset({"candidate", "released"})


def check_content_delete(target: str, holders: Sequence[Holder], *, repository: str,
                         is_blob: bool) -> StreamViolation | None:
    """May the manifest or blob ``target`` of a release-managed repository be deleted?

    ``holders`` are the manifests that keep it (the manifest itself included, for a manifest).
    Refused (``build-protected``) when one of them is a pending or released build, or (other
    than the manifest itself, whose tags :func:`check_registry_write` judges one by one)
    carries a stream tag.
    """
    what = "blob" if is_blob else "manifest"
    for holder in holders:
        itself = holder.digest == target and not is_blob
        part = "" if itself else f" is part of {holder.digest}, which"
        if holder.build_status in PROTECTING_STATUSES:
            state = ("pending release" if holder.build_status == "candidate"
                     else "released")
            how = (f"withdraw it first (`strata candidate withdraw {repository}@{holder.digest}"
                   " --reason TEXT`); garbage collection then removes what nothing else uses"
                   if holder.build_status == "candidate"
                   else "released builds are never deleted; garbage collection is the only "
                   "way content leaves")
            return StreamViolation(
                Rule.BUILD_PROTECTED,
                f"{what} {target} of {repository}{part} is build {holder.nvr}, {state}: {how}")
        tagged = [tag for tag in holder.tags if is_stream_tag(tag)]
        if tagged and not itself:
            return StreamViolation(
                Rule.BUILD_PROTECTED,
                f"{what} {target} of {repository}{part} carries the stream tag(s) "
                f"{', '.join(sorted(tagged))}: content of a published stream is never deleted "
                "through /v2/; garbage collection is the only way it leaves")
    return None
