"""Frozen records the metadata store hands out."""

from __future__ import annotations

from collections.abc import Callable
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


@dataclass(frozen=True, slots=True)
class TagRecord:
    repository: str
    name: str
    digest: str
    updated_at: float


# A tag write's veto: check(tag, current digest or None, repository is release-managed) raises
# to refuse. The registry's policy builds it; the store calls it inside the writing transaction.
TagCheck = Callable[[str, str | None, bool], None]
