"""What the release knows about one released image: the values an SBOM and a provenance
statement are made of, parsed once from the candidate's recorded inputs (``candidate_inputs``,
migration 0012), the image manifest and config, and the build record referrer.

Pure data: no I/O here (:mod:`strata.trust.attach` gathers it)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class LayerFact:
    digest: str
    size: int
    media_type: str


@dataclass(frozen=True)
class PackageFact:
    name: str
    version: str
    arch: str = ""
    kind: str = ""  # "rpm", "deb", "apk" (from the build record), "" when unknown


@dataclass(frozen=True)
class ImageFacts:
    """One released image and what it was built from. ``record`` fields are None when the
    build left no (readable) build record, e.g. an imported base image."""

    host: str  # the registry's public host[:port]
    repository: str
    digest: str
    size: int
    media_type: str
    nvr: str
    created: dt.datetime  # the image's creation time (SOURCE_DATE_EPOCH of the build)
    layers: tuple[LayerFact, ...]
    packages: tuple[PackageFact, ...]
    source_url: str | None = None
    source_ref: str | None = None
    source_commit: str | None = None
    source_dirty: bool = False  # built from a checkout with uncommitted changes
    base_reference: str | None = None
    base_repository: str | None = None
    base_tag: str | None = None
    base_digest: str | None = None
    containerfile: str | None = None
    containerfile_digest: str | None = None
    source_date_epoch: int | None = None
    network: str | None = None
    build_args: dict[str, str] = field(default_factory=dict, hash=False)
    target: str | None = None
    compression: str | None = None
    context: str | None = None
    images: dict[str, str] = field(default_factory=dict, hash=False)  # pulled ref -> digest
    builder_version: str | None = None
    record_digest: str | None = None

    @property
    def reference(self) -> str:
        return f"{self.host}/{self.repository}@{self.digest}"

    @property
    def name(self) -> str:
        return f"{self.host}/{self.repository}"


def record_fields(record: dict[str, Any]) -> dict[str, Any]:
    """The fields of :class:`ImageFacts` a build record (``strata.build.record/v1``) gives."""
    source = _dict(record.get("source"))
    base = _dict(record.get("base"))
    inputs = _dict(record.get("inputs"))
    builder = _dict(record.get("builder"))
    args = _dict(inputs.get("build_args"))
    images = _dict(inputs.get("images"))
    sde = record.get("source_date_epoch")
    return {
        "source_ref": _str(source.get("ref")),
        "source_dirty": source.get("dirty") is True,
        "base_reference": _str(base.get("reference")),
        "containerfile": _str(inputs.get("containerfile")) or _str(source.get("containerfile")),
        "containerfile_digest": _str(source.get("containerfile_digest")),
        "source_date_epoch": sde if isinstance(sde, int) and not isinstance(sde, bool) else None,
        "network": _str(record.get("network")) or _str(inputs.get("network")),
        "build_args": {str(k): str(v) for k, v in args.items()},
        "target": _str(inputs.get("target")),
        "compression": _str(inputs.get("compression")),
        "context": _str(inputs.get("context")),
        "images": {str(k): str(v) for k, v in images.items()},
        "builder_version": _str(builder.get("version")),
    }


def record_package_kinds(record: dict[str, Any]) -> dict[tuple[str, str, str], str]:
    """(name, version, arch) -> package type ("rpm", "deb", "apk") from a build record."""
    kinds: dict[tuple[str, str, str], str] = {}
    for item in record.get("packages") or []:
        if isinstance(item, dict):
            key = (str(item.get("name", "")), str(item.get("version", "")),
                   str(item.get("arch", "")))
            kinds[key] = str(item.get("type", ""))
    return kinds


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
