"""Frozen records the metadata store hands out."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ManifestRecord:
    repository: str
    digest: str
    media_type: str
    size: int
    content: bytes
    artifact_type: str | None
    subject: str | None
    annotations: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    created_at: float = 0.0


@dataclass(frozen=True, slots=True)
class Referrer:
    """A manifest whose ``subject`` is another: what the referrers API lists (no content)."""

    digest: str
    media_type: str
    size: int
    artifact_type: str | None
    annotations: dict[str, str] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True, slots=True)
class Reference:
    """A manifest's reference to a blob or (for indexes) a child manifest."""

    digest: str
    is_manifest: bool


@dataclass(frozen=True, slots=True)
class UploadRecord:
    id: str
    repository: str
    size: int
    created_at: float
    updated_at: float
    account: str | None = None  # who opened it (None: an open registry, or an older session)
    hash_state: bytes | None = None  # the running sha256 at ``size`` (serialized)


@dataclass(frozen=True, slots=True)
class TagRecord:
    repository: str
    name: str
    digest: str
    updated_at: float


@dataclass(frozen=True, slots=True)
class HeldBy:
    """A manifest of the repository that keeps a manifest or blob being deleted: the manifest
    itself, an index listing it, or a manifest referencing the blob (and its indexes); with
    its registered build's status and NVR, if any, and its tags."""

    digest: str
    build_status: str | None
    nvr: str | None
    tags: tuple[str, ...]


# A tag write's veto: check(tag, current digest or None, repository is release-managed) raises
# to refuse. The registry's policy builds it; the store calls it inside the writing transaction.
TagCheck = Callable[[str, str | None, bool], None]

# A delete's veto: check(repository is release-managed, the manifests holding the target)
# raises to refuse; called by the store inside the deleting transaction.
HoldCheck = Callable[[bool, Sequence[HeldBy]], None]
