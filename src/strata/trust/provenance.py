"""The provenance of a released image: an in-toto Statement v1 whose predicate is SLSA
Provenance v1 (https://slsa.dev/provenance/v1), read back with in-toto-attestation's parser.

Made at release publish (:mod:`strata.trust.attach`) from the build's recorded inputs
(``candidate_inputs``: source URL and commit, base repository, tag and digest) and its build
record (Containerfile path and digest, build arguments, target, ``RUN`` network, compression,
``SOURCE_DATE_EPOCH``, pulled images, builder version):

* ``subject``: ``HOST/REPOSITORY`` with the manifest digest;
* ``buildDefinition.buildType`` :data:`BUILD_TYPE`; ``externalParameters``: ``source``
  (``url``, ``ref``, ``commit``, ``context``), ``containerfile`` (``path``, ``digest``),
  ``buildArgs``, ``target``, ``network``; ``internalParameters``: ``sourceDateEpoch``,
  ``compression``, ``release`` (the NVR's release field the builder labels), ``nvr``;
  ``resolvedDependencies``: the git commit (``digest.gitCommit``), the base image
  (``digest.sha256``, name ``base``) and every other pulled image;
* ``runDetails.builder``: id :data:`BUILDER_ID`, ``version.strata`` the builder's version.

Deterministic bytes (sorted keys, no clock, no release name: the documents are made before the
release's transaction, and a build is published once), so attaching again gives the same
artifact.
:func:`parse_provenance` is what ``strata verify`` trusts after checking the signature.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from strata.oci import mediatypes as mt
from strata.trust.facts import ImageFacts

__all__ = ["BUILDER_ID", "BUILD_TYPE", "PREDICATE_TYPE", "PROVENANCE_ARTIFACT_TYPE",
           "PROVENANCE_MEDIA_TYPE", "STATEMENT_TYPE", "Provenance", "ProvenanceError",
           "make_provenance", "parse_provenance"]

PROVENANCE_MEDIA_TYPE = mt.IN_TOTO_JSON
PROVENANCE_ARTIFACT_TYPE = PROVENANCE_MEDIA_TYPE
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "https://strata.dev/build/containerfile/v1"
BUILDER_ID = "https://strata.dev/builder/strata-build"


class ProvenanceError(ValueError):
    """A provenance document that is not a valid in-toto statement of ours."""


@dataclass(frozen=True)
class Provenance:
    """What ``strata verify`` needs of a provenance statement."""

    subjects: tuple[tuple[str, str], ...]  # (name, "sha256:<hex>")
    source_url: str | None
    source_commit: str | None
    source_ref: str | None
    source_dirty: bool
    context: str | None
    containerfile: str | None
    containerfile_digest: str | None
    build_args: dict[str, str] = field(hash=False)
    target: str | None
    network: str | None
    compression: str | None
    source_date_epoch: int | None
    release: str | None
    nvr: str | None
    base_reference: str | None
    base_digest: str | None
    images: dict[str, str] = field(hash=False)  # pulled reference -> digest
    builder_version: str | None


def _drop_none(value: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in value.items() if v is not None and v != {}}


def _dependencies(facts: ImageFacts) -> list[dict[str, Any]]:
    deps: list[dict[str, Any]] = []
    if facts.source_url and facts.source_commit:
        deps.append({"uri": f"git+{facts.source_url}", "name": "source",
                     "digest": {"gitCommit": facts.source_commit}})
    if facts.base_digest:
        ref = facts.base_reference or (
            f"{facts.host}/{facts.base_repository}:{facts.base_tag}"
            if facts.base_repository else None)
        base: dict[str, Any] = {"name": "base",
                                "digest": {"sha256": facts.base_digest.removeprefix("sha256:")}}
        if ref:
            base["uri"] = f"oci://{ref}"
            base["annotations"] = {"reference": ref}
        deps.append(base)
    for ref, digest in sorted(facts.images.items()):  # as the Containerfile names them
        deps.append({"uri": f"oci://{ref}", "name": "image",
                     "digest": {"sha256": digest.removeprefix("sha256:")},
                     "annotations": {"reference": ref}})
    return deps


def make_provenance(facts: ImageFacts) -> bytes:
    """The in-toto statement (SLSA provenance v1) of ``facts`` as deterministic JSON."""
    release_field = facts.nvr.rsplit("-", 1)[-1] if facts.nvr.count("-") >= 2 else None
    external = _drop_none({
        "source": _drop_none({"url": facts.source_url, "ref": facts.source_ref,
                              "commit": facts.source_commit, "context": facts.context,
                              "dirty": True if facts.source_dirty else None}),
        "containerfile": _drop_none({"path": facts.containerfile,
                                     "digest": facts.containerfile_digest}),
        "buildArgs": dict(sorted(facts.build_args.items())),
        "target": facts.target,
        "network": facts.network,
    })
    internal = _drop_none({
        "sourceDateEpoch": facts.source_date_epoch,
        "compression": facts.compression,
        "release": release_field,
        "nvr": facts.nvr,
        "buildRecord": facts.record_digest,
    })
    predicate = {
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": external,
            "internalParameters": internal,
            "resolvedDependencies": _dependencies(facts),
        },
        "runDetails": {
            "builder": _drop_none({"id": BUILDER_ID,
                                   "version": _drop_none({"strata": facts.builder_version})}),
        },
    }
    statement = {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": facts.name,
                     "digest": {"sha256": facts.digest.removeprefix("sha256:")}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": predicate,
    }
    return json.dumps(statement, sort_keys=True, separators=(",", ":")).encode()


def _standard_parse(body: bytes) -> dict[str, Any]:
    """Parse ``body`` with in-toto-attestation (the Statement and the SLSA v1 predicate
    protos), then return it as plain JSON."""
    from google.protobuf import json_format
    from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
    from in_toto_attestation.v1 import statement_pb2
    from in_toto_attestation.v1.statement import Statement

    try:
        pb = json_format.Parse(body.decode("utf-8"), statement_pb2.Statement())
        Statement.copy_from_pb(pb).validate()
        json_format.ParseDict(json_format.MessageToDict(pb.predicate),
                              provenance_pb2.Provenance())
    except (json_format.ParseError, ValueError, UnicodeDecodeError) as exc:
        raise ProvenanceError(f"not an in-toto statement: {exc}") from exc
    if pb.predicate_type != PREDICATE_TYPE:
        raise ProvenanceError(f"predicate type {pb.predicate_type!r}, not {PREDICATE_TYPE}")
    data: dict[str, Any] = json.loads(body)
    return data


def _get(data: Any, *path: str) -> Any:
    for key in path:
        data = data.get(key) if isinstance(data, dict) else None
    return data


def _s(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def parse_provenance(body: bytes) -> Provenance:
    """The provenance of ``body`` (raises :class:`ProvenanceError`)."""
    data = _standard_parse(body)
    subjects = []
    for item in data.get("subject") or []:
        digest = _get(item, "digest", "sha256")
        if isinstance(digest, str):
            subjects.append((str(item.get("name", "")), f"sha256:{digest}"))
    build = _get(data, "predicate", "buildDefinition") or {}
    if _get(build, "buildType") != BUILD_TYPE:
        raise ProvenanceError(f"build type {_get(build, 'buildType')!r}, not {BUILD_TYPE}")
    external = build.get("externalParameters") or {}
    internal = build.get("internalParameters") or {}
    base_ref = base_digest = commit = None
    images: dict[str, str] = {}
    for dep in build.get("resolvedDependencies") or []:
        name = dep.get("name")
        sha = _get(dep, "digest", "sha256")
        ref = _get(dep, "annotations", "reference")
        if name == "source":
            commit = _s(_get(dep, "digest", "gitCommit"))
        elif name in ("base", "image") and isinstance(sha, str):
            if name == "base":
                base_ref, base_digest = _s(ref), f"sha256:{sha}"
            elif isinstance(ref, str):
                images[ref] = f"sha256:{sha}"
    sde = internal.get("sourceDateEpoch")
    args = external.get("buildArgs") or {}
    return Provenance(
        subjects=tuple(subjects),
        source_url=_s(_get(external, "source", "url")),
        source_commit=_s(_get(external, "source", "commit")) or commit,
        source_ref=_s(_get(external, "source", "ref")),
        source_dirty=_get(external, "source", "dirty") is True,
        context=_s(_get(external, "source", "context")),
        containerfile=_s(_get(external, "containerfile", "path")),
        containerfile_digest=_s(_get(external, "containerfile", "digest")),
        build_args={str(k): str(v) for k, v in args.items()} if isinstance(args, dict) else {},
        target=_s(external.get("target")),
        network=_s(external.get("network")),
        compression=_s(internal.get("compression")),
        source_date_epoch=int(sde) if isinstance(sde, (int, float)) else None,
        release=_s(internal.get("release")),
        nvr=_s(internal.get("nvr")),
        base_reference=base_ref,
        base_digest=base_digest,
        images=images,
        builder_version=_s(_get(data, "predicate", "runDetails", "builder", "version",
                                "strata")),
    )
