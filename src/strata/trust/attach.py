"""SBOM and provenance referrers of released images, pushed and signed after a publish.

:class:`Attestations` is the release engine's after-publish hook (wired in
``server/api/setup.py``; the engine holds only a callable). For each build the committed
release published -- read back by the engine after the commit, so nothing is made for a digest
the release did not publish, and a build whose status is not ``released`` in that release is
refused here again -- it gathers :class:`strata.trust.facts.ImageFacts` (recorded inputs from
``candidate_inputs``, the image manifest and config, the build record referrer) and pushes
through the registry's facade, with ``subject`` = the image:

* the SBOM (:mod:`strata.trust.sbom`, artifactType ``application/vnd.cyclonedx+json``);
* the provenance (:mod:`strata.trust.provenance`, ``application/vnd.in-toto+json``);

then asks the :class:`ArtifactSigner` (the release's cosign signer) to sign each artifact's
manifest digest. Both documents are deterministic, so a second run (a retry, or
:meth:`Attestations.attach` called again for a release) pushes the same digests: no
duplicates in ``/v2/<name>/referrers/<digest>``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from strata.build.record import RECORD_ARTIFACT_TYPE
from strata.errors import RegistryError
from strata.meta.rebuild_store import RebuildStore
from strata.oci import mediatypes as mt
from strata.oci.digest import Digest
from strata.oci.names import ManifestRef, RepositoryName
from strata.registry.service import Registry
from strata.release.model import Build, BuildStatus, Release
from strata.trust.facts import (
    ImageFacts,
    LayerFact,
    PackageFact,
    record_fields,
    record_package_kinds,
)
from strata.trust.provenance import (
    PROVENANCE_ARTIFACT_TYPE,
    PROVENANCE_MEDIA_TYPE,
    make_provenance,
)
from strata.trust.sbom import SBOM_ARTIFACT_TYPE, SBOM_MEDIA_TYPE, make_sbom

__all__ = ["ArtifactSigner", "Attached", "Attestations", "artifact_manifest"]

log = logging.getLogger("strata.trust")

EMPTY_JSON = b"{}"
MAX_RECORD_BYTES = 8 << 20
CREATED = "org.opencontainers.image.created"


class ArtifactSigner(Protocol):
    """Signs a manifest digest the release published (the cosign signature referrer)."""

    async def sign_artifact(self, repository: str, digest: str, size: int,
                            media_type: str) -> None: ...


@dataclass(frozen=True)
class Attached:
    repository: str
    image: str
    sbom: str
    provenance: str
    signed: bool

    def to_json(self) -> dict[str, Any]:
        return {"repository": self.repository, "image": self.image, "sbom": self.sbom,
                "provenance": self.provenance, "signed": self.signed}


def artifact_manifest(artifact_type: str, media_type: str, body: bytes,
                      subject: dict[str, Any], created: str) -> bytes:
    """An OCI 1.1 artifact manifest (image-spec "Guidelines for Artifact Usage"): the empty
    config, one layer (``body``), ``subject`` = the image."""
    manifest = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": {"mediaType": mt.OCI_EMPTY, "digest": mt.EMPTY_JSON_DIGEST,
                   "size": len(EMPTY_JSON)},
        "layers": [{"mediaType": media_type, "digest": str(Digest.of(body)),
                    "size": len(body)}],
        "subject": subject,
        "annotations": {CREATED: created},
    }
    return json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()


async def _once(body: bytes) -> AsyncIterator[bytes]:
    yield body


class Attestations:
    """``host``: the registry's public host[:port], the name in SBOM and provenance
    subjects; ``signer`` None: artifacts are pushed unsigned (no release key configured)."""

    def __init__(self, registry: Registry, rebuilds: RebuildStore, *, host: str,
                 signer: ArtifactSigner | None = None) -> None:
        self.registry = registry
        self.rebuilds = rebuilds
        self.host = host
        self.signer = signer

    async def __call__(self, release: Release, builds: Sequence[Build]) -> None:
        """The engine's after-publish hook: attach to every build; a failure is logged (the
        release is committed already) and :meth:`attach` can be run again."""
        for build in builds:
            try:
                await self.attach_one(release, build)
            except Exception:
                log.exception("SBOM/provenance of %s@%s (release %s) not attached",
                              build.repository, build.digest, release.name)

    async def attach(self, release: Release, builds: Sequence[Build]) -> list[Attached]:
        return [await self.attach_one(release, build) for build in builds]

    async def attach_one(self, release: Release, build: Build) -> Attached:
        if build.status is not BuildStatus.RELEASED or build.release_name != release.name:
            raise ValueError(f"{build.repository}@{build.digest} was not published by "
                             f"{release.name}: no SBOM or provenance for it")
        repo = RepositoryName.parse(build.repository)
        facts = await self.facts(repo, release, build)
        subject = {"mediaType": facts.media_type, "digest": facts.digest, "size": facts.size}
        created = facts.created.strftime("%Y-%m-%dT%H:%M:%SZ")
        done: list[tuple[str, int]] = []
        for artifact_type, media_type, body in (
                (SBOM_ARTIFACT_TYPE, SBOM_MEDIA_TYPE, make_sbom(facts)),
                (PROVENANCE_ARTIFACT_TYPE, PROVENANCE_MEDIA_TYPE, make_provenance(facts))):
            manifest = artifact_manifest(artifact_type, media_type, body, subject, created)
            await self._push_blob(repo, EMPTY_JSON)
            await self._push_blob(repo, body)
            digest = Digest.of(manifest)
            await self.registry.manifests.put(repo, ManifestRef(digest=digest), manifest,
                                              mt.OCI_MANIFEST)
            done.append((str(digest), len(manifest)))
        if self.signer is not None:
            for digest_text, size in done:
                await self.signer.sign_artifact(repo.value, digest_text, size, mt.OCI_MANIFEST)
        log.info("attached SBOM %s and provenance %s to %s@%s", done[0][0], done[1][0],
                 repo.value, build.digest)
        return Attached(repo.value, build.digest, done[0][0], done[1][0],
                        self.signer is not None)

    async def _push_blob(self, repo: RepositoryName, body: bytes) -> None:
        session = await self.registry.uploads.start(repo)
        await self.registry.uploads.finish(repo, session.id, Digest.of(body), _once(body),
                                           len(body))

    async def _read_blob(self, repo: RepositoryName, digest: str, limit: int) -> bytes:
        handle = await self.registry.blobs.open(repo, Digest.parse(digest))
        if handle.size > limit:
            raise ValueError(f"{digest}: {handle.size} bytes, more than {limit}")
        chunks = [chunk async for chunk in self.registry.blobs.stream(handle, 0, handle.size)]
        return b"".join(chunks)

    async def _record(self, repo: RepositoryName, digest: str
                      ) -> tuple[str, dict[str, Any]] | None:
        """The build record referrer of the image (the first, in digest order, that names
        this image), or None."""
        page = await self.registry.discovery.referrers(repo, Digest.parse(digest),
                                                       RECORD_ARTIFACT_TYPE)
        for desc in page.index.get("manifests", []):
            try:
                rec = await self.registry.manifests.get(
                    repo, ManifestRef(digest=Digest.parse(desc["digest"])))
                layers = json.loads(rec.content).get("layers") or []
                if len(layers) != 1:
                    continue
                body = await self._read_blob(repo, layers[0]["digest"], MAX_RECORD_BYTES)
                record = json.loads(body)
            except (RegistryError, ValueError, KeyError, TypeError):
                continue
            if isinstance(record, dict) and (record.get("image") or {}).get("digest") == digest:
                return str(desc["digest"]), record
        return None

    async def facts(self, repo: RepositoryName, release: Release, build: Build) -> ImageFacts:
        manifest = await self.registry.manifests.get(
            repo, ManifestRef(digest=Digest.parse(build.digest)))
        doc = json.loads(manifest.content)
        layers = tuple(LayerFact(str(item["digest"]), int(item["size"]),
                                 str(item.get("mediaType", "")))
                       for item in doc.get("layers") or [])
        created = dt.datetime.fromtimestamp(0, dt.UTC)
        config = doc.get("config") or {}
        if manifest.media_type in mt.IMAGE_MANIFESTS and config.get("digest"):
            with_created = json.loads(await self._read_blob(repo, config["digest"], 4 << 20))
            created = _parse_time(with_created.get("created")) or created
        inputs = await self.rebuilds.inputs_of(repo.value, build.digest)
        found = await self._record(repo, build.digest)
        record_digest, record = found if found is not None else (None, {})
        kinds = record_package_kinds(record)
        packages = tuple(PackageFact(p.name, p.version, p.arch,
                                     kinds.get((p.name, p.version, p.arch), ""))
                         for p in (inputs.packages if inputs is not None else ()))
        if not packages:  # a build registered without inputs: the record's own list
            packages = tuple(PackageFact(n, v, a, k) for (n, v, a), k in kinds.items())
        fields = record_fields(record)
        source = _dict(record.get("source"))
        return ImageFacts(
            host=self.host, repository=repo.value, digest=build.digest, size=manifest.size,
            media_type=manifest.media_type, nvr=str(build.nvr), release=release.name,
            created=created, layers=layers, packages=packages,
            source_url=(inputs.source_url if inputs else None) or source.get("url"),
            source_commit=(inputs.source_commit if inputs else None) or source.get("commit"),
            base_repository=inputs.base_repository if inputs else None,
            base_tag=inputs.base_tag if inputs else None,
            base_digest=(inputs.base_digest if inputs else None)
            or _dict(record.get("base")).get("digest"),
            record_digest=record_digest, **fields)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _parse_time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
