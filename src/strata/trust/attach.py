"""SBOM and provenance referrers of released images, committed and signed with the release.

:class:`Attestations` is the release engine's ``ReleaseSigner``
(:class:`strata.release.publish.ReleaseSigner`; wired in ``server/api/setup.py``): it wraps the
release's cosign signer (:class:`strata.trust.signer.TrustSigner`) and adds, for each image the
release publishes, two OCI 1.1 artifacts with ``subject`` = the image:

* the SBOM (:mod:`strata.trust.sbom`, artifactType ``application/vnd.cyclonedx+json``);
* the provenance (:mod:`strata.trust.provenance`, ``application/vnd.in-toto+json``);

each signed like the image (a cosign signature referrer and ``sha256-<hex>.sig`` tag of the
artifact, with the namespace's release key).

Two phases, as for the image signatures:

1. :meth:`Attestations.prepare` -- before the publish transaction, for every build the release
   may publish: the facts are gathered (:class:`strata.trust.facts.ImageFacts`: recorded inputs
   from ``candidate_inputs``, the image manifest and config, the build record referrer, all
   through the registry's facade), the documents made and their blobs pushed (bytes only: an
   unused blob is collected like any other), with the blobs of their signatures;
2. :meth:`Attestations.sign` -- inside the publish transaction, after the release's writes and
   the images' signatures, for the builds it did publish: the artifact manifests are stored
   (refused for a digest that is not a released build) and signed. Commit makes the release,
   its signatures, SBOMs and provenance visible together; nothing is ever written for a digest
   the release did not publish, and no push through ``/v2/`` is involved.

Both documents are deterministic (no clock, no release name), so attaching again
(:meth:`Attestations.attach`) stores the same digests: no duplicate referrers.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from strata.errors import Code, RegistryError
from strata.meta.rebuild_store import RebuildStore
from strata.meta.release_store import ReleaseStore, ReleaseWriter
from strata.oci import mediatypes as mt
from strata.oci.digest import Digest
from strata.oci.names import ManifestRef, RepositoryName
from strata.registry.service import Registry
from strata.release.errors import ReleaseError
from strata.release.model import Build, Release
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
from strata.trust.signer import TrustSigner

__all__ = ["Attached", "Attestations", "artifact_manifest"]

log = logging.getLogger("strata.trust")

EMPTY_JSON = b"{}"
MAX_RECORD_BYTES = 8 << 20
CREATED = "org.opencontainers.image.created"


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
    subjects; ``signer``: the release's cosign signer (None: releases are not signed, and the
    SBOM and provenance are stored unsigned)."""

    def __init__(self, registry: Registry, rebuilds: RebuildStore, *, host: str,
                 signer: TrustSigner | None = None) -> None:
        self.registry = registry
        self.rebuilds = rebuilds
        self.host = host
        self.signer = signer
        self._prepared: dict[tuple[str, str], tuple[bytes, ...]] = {}

    # -- before the transaction ------------------------------------------------------------
    async def prepare(self, builds: Sequence[Build]) -> None:
        """Push what attaching to ``builds`` will reference (``ReleaseSigner.prepare``). A
        build whose documents cannot be made is logged and gets none; its release goes on."""
        if self.signer is not None:
            await self.signer.prepare(builds)
        for build in builds:
            try:
                manifests = await self._prepare_one(build)
            except Exception:
                log.exception("SBOM/provenance of %s@%s cannot be made", build.repository,
                              build.digest)
                continue
            self._prepared[(build.repository, build.digest)] = manifests

    async def _prepare_one(self, build: Build) -> tuple[bytes, ...]:
        repo = RepositoryName.parse(build.repository)
        facts = await self.facts(repo, build)
        subject = {"mediaType": facts.media_type, "digest": facts.digest, "size": facts.size}
        created = facts.created.strftime("%Y-%m-%dT%H:%M:%SZ")
        manifests = []
        # linear, but thousands of packages are tens of ms: made off the event loop
        sbom = await asyncio.to_thread(make_sbom, facts)
        for artifact_type, media_type, body in (
                (SBOM_ARTIFACT_TYPE, SBOM_MEDIA_TYPE, sbom),
                (PROVENANCE_ARTIFACT_TYPE, PROVENANCE_MEDIA_TYPE, make_provenance(facts))):
            await self._push_blob(repo, EMPTY_JSON)
            await self._push_blob(repo, body)
            manifests.append(artifact_manifest(artifact_type, media_type, body, subject,
                                               created))
        if self.signer is not None:
            await self.signer.prepare_digests(repo.value,
                                              [str(Digest.of(m)) for m in manifests])
        return tuple(manifests)

    # -- inside the transaction ------------------------------------------------------------
    def sign(self, tx: ReleaseWriter, release: Release, builds: Sequence[Build],
             at: float) -> None:
        """Sign the released images, store their SBOM and provenance and sign those
        (``ReleaseSigner.sign``, in the publish transaction; ``builds``: what it published)."""
        if self.signer is not None:
            self.signer.sign(tx, release, builds, at)
        trust = tx.trust()
        for build in builds:
            manifests = self._prepared.pop((build.repository, build.digest), None)
            if manifests is None:
                log.warning("no SBOM/provenance prepared for %s@%s", build.repository,
                            build.digest)
                continue
            if not trust.released(build.repository, build.digest):
                raise ReleaseError(Code.CONFLICT, {"rule": "attestation-release-only"},
                                   f"{build.repository}@{build.digest} is not published by "
                                   "a release: no SBOM or provenance for it")
            for manifest in manifests:
                digest = trust.put_manifest(build.repository, manifest, at)
                if self.signer is not None:
                    self.signer.sign_digest(trust, release.namespace, build.repository,
                                            digest, at=at, release=release.name)

    async def attach(self, store: ReleaseStore, release: Release,
                     builds: Sequence[Build]) -> list[Attached]:
        """Attach (again) to ``builds`` of the published ``release``: the same digests as
        at publish, nothing new stored. Refused for a build it did not publish."""
        for build in builds:
            if build.release_name != release.name:
                raise ReleaseError(Code.CONFLICT, {"rule": "attestation-release-only"},
                                   f"{build.repository}@{build.digest} was not published by "
                                   f"{release.name}: no SBOM or provenance for it")
        await self.prepare(builds)
        expected = {(b.repository, b.digest): self._prepared.get((b.repository, b.digest), ())
                    for b in builds}

        def go(tx: ReleaseWriter) -> None:
            self.sign(tx, release, builds, store.now())
        await store.write(go)
        out = []
        for (repository, image), manifests in expected.items():
            digests = [str(Digest.of(m)) for m in manifests]
            if len(digests) == 2:
                out.append(Attached(repository, image, digests[0], digests[1],
                                    self.signer is not None))
        return out

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

    async def _record(self, repo: RepositoryName, build: Build, named: str | None
                      ) -> tuple[str, dict[str, Any]] | None:
        """The build record of ``build``: the referrer its registration named (``named``,
        :attr:`BuildInputs.record_digest`), else -- a build registered without one -- the
        only referrer whose record names this image and its NVR (several such: none, as
        nothing says which one the build made). None when there is none."""
        if named is not None:
            return await self._read_record(repo, build, named)
        page = await self.registry.discovery.referrers(repo, Digest.parse(build.digest),
                                                       mt.BUILD_RECORD)
        found = []
        for desc in page.index.get("manifests", []):
            record = await self._read_record(repo, build, str(desc["digest"]))
            if record is not None and _dict(record[1].get("image")).get("nvr") in (
                    None, str(build.nvr)):
                found.append(record)
        if len(found) > 1:
            log.warning("%s@%s has %d build records and its registration named none: the "
                        "provenance names none", build.repository, build.digest, len(found))
        return found[0] if len(found) == 1 else None

    async def _read_record(self, repo: RepositoryName, build: Build, digest: str
                           ) -> tuple[str, dict[str, Any]] | None:
        """The build record manifest ``digest`` as (digest, record) when it is a build record
        referrer of ``build`` whose record names that image, else None."""
        try:
            rec = await self.registry.manifests.get(repo, ManifestRef(digest=Digest.parse(digest)))
            manifest = json.loads(rec.content)
            layers = manifest.get("layers") or []
            if (manifest.get("artifactType") != mt.BUILD_RECORD or len(layers) != 1
                    or (manifest.get("subject") or {}).get("digest") != build.digest):
                return None
            record = json.loads(await self._read_blob(repo, layers[0]["digest"],
                                                      MAX_RECORD_BYTES))
        except (RegistryError, ValueError, KeyError, TypeError, AttributeError):
            log.warning("build record %s of %s@%s cannot be read", digest, build.repository,
                        build.digest)
            return None
        if isinstance(record, dict) and _dict(record.get("image")).get("digest") == build.digest:
            return digest, record
        return None

    async def facts(self, repo: RepositoryName, build: Build) -> ImageFacts:
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
        found = await self._record(repo, build, inputs.record_digest if inputs else None)
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
            media_type=manifest.media_type, nvr=str(build.nvr),
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
