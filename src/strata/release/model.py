"""Values of the release domain (frozen records) and the references users type.

A managed repository is ``<namespace>/<name>`` (``f25/cockpit``) or a single component at the
root of the registry (``fedora``, ``f25``: base images, as Fedora published them), which belongs
to a namespace through its image row. :func:`split_repository` is the one parser of a
repository into (namespace component, image name); the namespace of a root repository is looked
up by :func:`strata.release.inventory.namespace_for`. References:

* ``f25/cockpit@sha256:…`` (or ``fedora@sha256:…``) names a build (:func:`parse_build_ref`);
* ``f25/cockpit:130`` (or ``f25:25``) names a tag, or a version stream (:func:`parse_tag_ref`).

In ``/api/v1/images/{ns}/{name}`` a root repository's namespace segment is ``_``
(:func:`api_segments`, :func:`repository_from_segments`): ``/api/v1/images/_/f25``.

Parsing failures raise :class:`strata.release.errors.ReleaseError` (``Code.INVALID``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from strata.errors import RegistryError
from strata.oci.digest import Digest
from strata.oci.names import RepositoryName, is_tag
from strata.release.errors import conflict as conflict
from strata.release.errors import invalid as invalid
from strata.release.errors import not_found as not_found
from strata.release.nvr import NVR
from strata.release.streams import is_cosign_tag as is_cosign_tag


class ImageStatus(StrEnum):
    IN_REVIEW = "in-review"
    ACTIVE = "active"
    RETIRED = "retired"


class BuildStatus(StrEnum):
    CANDIDATE = "candidate"
    RELEASED = "released"
    WITHDRAWN = "withdrawn"


class ReleaseKind(StrEnum):
    SCHEDULED = "scheduled"
    OOB = "oob"


class ReleaseStatus(StrEnum):
    PLANNED = "planned"
    PUBLISHED = "published"


def iso_time(at: float | None) -> str | None:
    if at is None:
        return None
    return dt.datetime.fromtimestamp(at, dt.UTC).isoformat(timespec="seconds").replace(
        "+00:00", "Z")


# -- references ------------------------------------------------------------------------------
ROOT_SEGMENT = "_"
"""The ``{ns}`` path segment of a root repository in ``/api/v1/images/{ns}/{name}``."""

REPOSITORY_FORMS = "<name> or <namespace>/<name>"


def parse_repository(text: str) -> RepositoryName:
    """A repository the release engine manages: ``<name>`` or ``<namespace>/<name>``."""
    try:
        repo = RepositoryName.parse(text)
    except RegistryError:
        raise invalid(f"invalid repository name {text!r}") from None
    if repo.value.count("/") > 1:
        raise invalid(f"repository {text!r} must be {REPOSITORY_FORMS}")
    return repo


def split_repository(repo: RepositoryName) -> tuple[str | None, str]:
    """(namespace component, image name): ``f25/cockpit`` -> (f25, cockpit), ``fedora`` ->
    (None, fedora): a root repository's namespace is its image row's."""
    head, sep, name = repo.value.partition("/")
    return (head, name) if sep else (None, head)


def image_name_of(repo: RepositoryName) -> str:
    return split_repository(repo)[1]


def api_segments(repository: str) -> tuple[str, str]:
    """The ``{ns}`` and ``{name}`` of an image's /api/v1 path (``_`` for the root)."""
    prefix, name = split_repository(parse_repository(repository))
    return prefix or ROOT_SEGMENT, name


def repository_from_segments(ns: str, name: str) -> str:
    """The repository an /api/v1 image path names (the inverse of :func:`api_segments`)."""
    return name if ns == ROOT_SEGMENT else f"{ns}/{name}"


def parse_build_ref(text: str) -> tuple[RepositoryName, Digest]:
    repo, sep, digest = text.partition("@")
    if not sep:
        raise invalid(f"{text!r} is not <repository>@<digest> ({REPOSITORY_FORMS})")
    try:
        parsed = Digest.parse(digest)
    except RegistryError:
        raise invalid(f"invalid digest in {text!r}") from None
    return parse_repository(repo), parsed


def parse_tag_ref(text: str) -> tuple[RepositoryName, str]:
    repo, sep, tag = text.rpartition(":")
    if not sep or "/" in tag or not is_tag(tag):
        raise invalid(f"{text!r} is not <repository>:<tag> ({REPOSITORY_FORMS})")
    return parse_repository(repo), tag


# -- records ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Namespace:
    name: str
    dist_tag: str
    interval_days: int
    anchor: dt.date
    base_image: str | None
    created_at: float

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "dist_tag": self.dist_tag,
                "interval_days": self.interval_days, "anchor": self.anchor.isoformat(),
                "base_image": self.base_image, "created_at": iso_time(self.created_at)}


@dataclass(frozen=True)
class Image:
    repository: str
    namespace: str
    name: str
    status: ImageStatus
    maintainers: tuple[str, ...]
    source_url: str | None
    source_branch: str | None
    created_at: float
    summary: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"repository": self.repository, "namespace": self.namespace, "name": self.name,
                "status": self.status.value, "maintainers": list(self.maintainers),
                "source": {"url": self.source_url, "branch": self.source_branch},
                "summary": self.summary, "created_at": iso_time(self.created_at)}


@dataclass(frozen=True)
class Build:
    """A registered build: a candidate until a release publishes it."""

    repository: str
    digest: str
    nvr: NVR
    status: BuildStatus
    advisories: tuple[str, ...]
    reason: str | None
    release_name: str | None
    created_at: float
    created_by: str
    withdrawn_at: float | None = None
    withdrawn_by: str | None = None
    withdrawn_reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        withdrawn = None if self.withdrawn_at is None else {
            "at": iso_time(self.withdrawn_at), "by": self.withdrawn_by,
            "reason": self.withdrawn_reason}
        return {"repository": self.repository, "digest": self.digest, "nvr": str(self.nvr),
                "name": self.nvr.name, "version": self.nvr.version,
                "release": self.nvr.release, "tag": self.nvr.version_release,
                "status": self.status.value, "advisories": list(self.advisories),
                "reason": self.reason, "release_name": self.release_name,
                "created_at": iso_time(self.created_at), "created_by": self.created_by,
                "withdrawn": withdrawn}


@dataclass(frozen=True)
class Stream:
    repository: str
    version: str
    eol: bool
    eol_at: float | None = None
    eol_by: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"repository": self.repository, "version": self.version, "eol": self.eol,
                "eol_at": iso_time(self.eol_at), "eol_by": self.eol_by}


@dataclass(frozen=True)
class TagEvent:
    repository: str
    tag: str
    old_digest: str | None
    new_digest: str | None
    actor: str
    release_name: str | None
    reason: str | None
    at: float
    id: int = field(default=0, compare=False)  # the store's row id (the history's page cursor)

    def to_json(self) -> dict[str, Any]:
        return {"repository": self.repository, "tag": self.tag,
                "old_digest": self.old_digest, "new_digest": self.new_digest,
                "actor": self.actor, "release": self.release_name, "reason": self.reason,
                "at": iso_time(self.at), "at_epoch": self.at}


@dataclass(frozen=True)
class Release:
    name: str
    kind: ReleaseKind
    namespace: str
    scheduled_for: dt.date | None
    status: ReleaseStatus
    created_at: float
    published_at: float | None
    actor: str | None
    advisories: tuple[str, ...]
    reason: str | None
    notes_md: str | None = None
    notes: dict[str, Any] | None = field(default=None, compare=False, hash=False)

    def to_json(self, *, with_notes: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name, "kind": self.kind.value, "namespace": self.namespace,
            "scheduled_for": self.scheduled_for.isoformat() if self.scheduled_for else None,
            "status": self.status.value, "created_at": iso_time(self.created_at),
            "published_at": iso_time(self.published_at), "actor": self.actor,
            "advisories": list(self.advisories), "reason": self.reason}
        if with_notes:
            out["notes"] = self.notes
            out["notes_markdown"] = self.notes_md
        return out


# -- webhooks --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Webhook:
    id: int
    url: str  # redacted: what everyone is shown
    events: tuple[str, ...]
    active: bool
    created_at: float

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "url": self.url, "events": list(self.events),
                "active": self.active, "created_at": iso_time(self.created_at)}


@dataclass(frozen=True)
class Delivery:
    """One outbox row: an event on its way to one webhook."""

    id: int
    webhook_id: int
    event: str
    status: str
    attempts: int
    next_attempt_at: float
    last_error: str | None
    delivered_at: float | None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "webhook_id": self.webhook_id, "event": self.event,
                "status": self.status, "attempts": self.attempts,
                "next_attempt_at": iso_time(self.next_attempt_at),
                "last_error": self.last_error, "delivered_at": iso_time(self.delivered_at)}


@dataclass(frozen=True)
class ClaimedDelivery:
    """A due delivery this process claimed, with what sending it needs."""

    id: int
    url: str  # redacted
    url_sealed: str | None
    secret: str | None  # sealed
    event: str
    payload: str
    attempts: int


@dataclass(frozen=True)
class DeliveryOutcome:
    """What one delivery attempt leaves on its row (``next_attempt_at`` None: unchanged)."""

    attempts: int
    status: str
    last_error: str | None
    next_attempt_at: float | None = None
    delivered_at: float | None = None


@dataclass(frozen=True)
class WebhookSecrets:
    """A webhook's stored URL and secrets, as :func:`strata.release.webhooks.seal_stored`
    reads and rewrites them."""

    id: int
    url: str
    url_sealed: str | None
    secret: str | None


@dataclass(frozen=True)
class TagMove:
    """One tag a release (or a rollback) points at a new digest."""

    repository: str
    tag: str
    digest: str


@dataclass(frozen=True)
class RepositoryTags:
    """What the stream planner reads of a repository: its tags, the NVRs of its registered
    builds (by digest) and its end-of-life versions."""

    repository: str
    image_name: str
    tags: dict[str, str] = field(compare=False, hash=False)
    build_nvrs: dict[str, NVR] = field(compare=False, hash=False)
    eol: frozenset[str]
    exists: bool = True  # the registry knows the repository


# -- what the read use-cases answer ----------------------------------------------------------
@dataclass(frozen=True)
class TagInfo:
    """A tag of an image: its stream kind, digest and (when known) the build's NVR."""

    tag: str
    stream: str
    digest: str
    nvr: str | None

    def to_json(self) -> dict[str, Any]:
        return {"tag": self.tag, "stream": self.stream, "digest": self.digest, "nvr": self.nvr}


@dataclass(frozen=True)
class ImageDetails:
    """An image with its version streams and its tags (``strata image show``)."""

    image: Image
    streams: tuple[Stream, ...]
    tags: tuple[TagInfo, ...]

    def to_json(self) -> dict[str, Any]:
        return {**self.image.to_json(), "streams": [s.to_json() for s in self.streams],
                "tags": [t.to_json() for t in self.tags]}


@dataclass(frozen=True)
class TagHistory:
    """The events of a tag (or of every tag of a repository), oldest first (one page of them);
    for one tag with ``at``, what it pointed to then (``digest``, ``nvr``: None before its
    first event; ``since``: the event that set it)."""

    repository: str
    tag: str | None
    events: tuple[TagEvent, ...]
    at: float | None = None
    digest: str | None = None
    nvr: str | None = None
    since: TagEvent | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"repository": self.repository, "tag": self.tag,
                               "events": [e.to_json() for e in self.events]}
        if self.tag is not None and self.at is not None:
            last = self.since or (self.events[-1] if self.events else None)
            since = last.to_json() if last else None
            out.update({"at": self.at, "digest": self.digest, "nvr": self.nvr,
                        "since": since})
        return out


@dataclass(frozen=True)
class ReleaseDetails:
    """A release with its notes (Markdown rendered from the stored notes) and its builds."""

    release: Release
    notes_markdown: str | None
    builds: tuple[Build, ...]

    def to_json(self) -> dict[str, Any]:
        out = self.release.to_json(with_notes=True)
        out["notes_markdown"] = self.notes_markdown
        return {**out, "builds": [b.to_json() for b in self.builds]}
