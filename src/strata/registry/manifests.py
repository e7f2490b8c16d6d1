"""Manifests and tags (distribution-spec "Pushing manifests", "Pulling manifests",
"Deleting tags", "Deleting manifests")."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from strata.errors import Code, RegistryError
from strata.meta.records import ManifestRecord, Reference, TagCheck
from strata.oci.digest import Digest
from strata.oci.manifest import parse_manifest
from strata.oci.names import ManifestRef, RepositoryName, parse_tag
from strata.registry.limits import Limits
from strata.registry.ports import MetaStore, TagPolicy


@dataclass(frozen=True, slots=True)
class PutResult:
    digest: Digest
    subject: str | None


class ManifestService:
    def __init__(self, meta: MetaStore, policy: TagPolicy, limits: Limits) -> None:
        self._meta = meta
        self._policy = policy
        self._limits = limits

    def _checker(self, repo: RepositoryName, new: str | None) -> TagCheck:
        def check(tag: str, current: str | None, managed: bool) -> None:
            self._policy.check_sync(repo.value, tag, current, new, managed)
        return check

    async def put(self, repo: RepositoryName, ref: ManifestRef, body: bytes,
                  content_type: str | None, extra_tags: Sequence[str] = ()) -> PutResult:
        if len(body) > self._limits.max_manifest_bytes:
            raise RegistryError(Code.SIZE_INVALID, "manifest exceeds "
                                f"{self._limits.max_manifest_bytes} bytes", status=413)
        parsed = parse_manifest(body, content_type)
        if ref.digest is not None:
            digest = Digest.of(body, ref.digest.algorithm)
            if digest != ref.digest:
                raise RegistryError(Code.DIGEST_INVALID,
                                    {"expected": str(ref.digest), "actual": str(digest)})
        else:
            digest = Digest.of(body)
        tags = [ref.tag] if ref.tag else []
        tags += [parse_tag(t) for t in extra_tags if t not in tags]
        references = [Reference(str(b.digest), False) for b in parsed.blobs]
        references += [Reference(str(c.digest), True) for c in parsed.children]
        subject = str(parsed.subject.digest) if parsed.subject else None
        record = ManifestRecord(
            repository=repo.value, digest=str(digest), media_type=parsed.media_type,
            size=len(body), content=body, artifact_type=parsed.artifact_type, subject=subject,
            annotations=parsed.annotations)
        await self._meta.put_manifest(record, references, tags,
                                      check_tag=self._checker(repo, str(digest)))
        return PutResult(digest, subject)

    async def get(self, repo: RepositoryName, ref: ManifestRef) -> ManifestRecord:
        if ref.digest is not None:
            record = await self._meta.get_manifest(repo.value, str(ref.digest))
        else:
            record = await self._meta.resolve_tag(repo.value, str(ref.tag))
        if record is None:
            await self._unknown(repo, ref)
        assert record is not None
        return record

    async def _unknown(self, repo: RepositoryName, ref: ManifestRef) -> None:
        if not await self._meta.repository_exists(repo.value):
            raise RegistryError(Code.NAME_UNKNOWN, {"name": repo.value})
        raise RegistryError(Code.MANIFEST_UNKNOWN, {"reference": str(ref)})

    async def delete(self, repo: RepositoryName, ref: ManifestRef) -> None:
        if ref.digest is not None:
            ok = await self._meta.delete_manifest(repo.value, str(ref.digest),
                                                  check_tag=self._checker(repo, None))
        else:
            ok = await self._meta.delete_tag(repo.value, str(ref.tag),
                                             check_tag=self._checker(repo, None))
        if not ok:
            await self._unknown(repo, ref)
