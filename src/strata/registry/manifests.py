"""Manifests and tags (distribution-spec "Pushing manifests", "Pulling manifests",
"Deleting tags", "Deleting manifests")."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

from strata.errors import Code, RegistryError
from strata.meta.records import HeldBy, HoldCheck, ManifestRecord, Reference, TagCheck
from strata.oci import mediatypes as mt
from strata.oci.digest import Digest
from strata.oci.manifest import Descriptor, parse_manifest
from strata.oci.names import ManifestRef, RepositoryName, parse_tag
from strata.registry.limits import Limits
from strata.registry.ports import MetaStore, TagPolicy

# Bodies up to this size are decoded on the event loop (a fraction of a millisecond); larger
# ones by the service's decoder: one thread, or (``strata serve``) one process per worker.
# Measured: json.loads of a 4 MiB manifest holds the GIL ~30 ms in one piece, so a thread
# still stalled the loop (p99 of an unrelated GET 155 ms under 16 such pushes); a process
# shares no GIL, and what comes back is small (the distinct digests, not 10,000 objects).
INLINE_MANIFEST_BYTES = 64 * 1024
# Large manifest PUTs a worker reads and decodes at once; the others wait before their body is
# read (TCP holds it back), so a flood of them costs the loop little while it waits its turn.
BIG_MANIFEST_PUTS = 2


@dataclass(frozen=True, slots=True)
class PutResult:
    digest: Digest
    subject: str | None


@dataclass(frozen=True, slots=True)
class Decoded:
    """What the registry needs of a manifest, decoded: its digest and the distinct digests it
    references, in order of first mention."""

    media_type: str
    digest: Digest
    artifact_type: str | None
    subject: str | None
    config: Descriptor | None
    blobs: tuple[str, ...]  # blobs that must be in the repository (config, local layers)
    children: tuple[str, ...]  # child manifests of an index
    images: tuple[str, ...]  # the children that are image manifests
    layer_types: tuple[str, ...] = ()  # media types of an image manifest's layers
    annotations: dict[str, str] = field(default_factory=dict, hash=False, compare=False)


def decode_manifest(body: bytes, content_type: str | None, expected: Digest | None,
                    max_references: int) -> Decoded:
    """Everything a PUT needs from the body that costs CPU: parse, validate, digest."""
    parsed = parse_manifest(body, content_type, max_references=max_references)
    if expected is not None:
        digest = Digest.of(body, expected.algorithm)
        if digest != expected:
            raise RegistryError(Code.DIGEST_INVALID,
                                {"expected": str(expected), "actual": str(digest)})
    else:
        digest = Digest.of(body)
    return Decoded(
        media_type=parsed.media_type, digest=digest, artifact_type=parsed.artifact_type,
        subject=str(parsed.subject.digest) if parsed.subject else None, config=parsed.config,
        blobs=tuple(dict.fromkeys(str(b.digest) for b in parsed.blobs)),
        children=tuple(dict.fromkeys(str(c.digest) for c in parsed.children)),
        images=tuple(dict.fromkeys(str(c.digest) for c in parsed.children
                                   if c.media_type in mt.IMAGE_MANIFESTS)),
        layer_types=tuple(dict.fromkeys(b.media_type for b in parsed.blobs[1:])),
        annotations=parsed.annotations)


class ManifestService:
    def __init__(self, meta: MetaStore, policy: TagPolicy, limits: Limits, *,
                 decode_in_process: bool = False) -> None:
        self._meta = meta
        self._policy = policy
        self._limits = limits
        self._in_process = decode_in_process
        self._decoder: Executor | None = None
        self._big_puts = asyncio.Semaphore(BIG_MANIFEST_PUTS)

    def admit(self, length: int | None) -> contextlib.AbstractAsyncContextManager[Any]:
        """Hold around reading and storing a pushed manifest of ``length`` bytes (None:
        unknown): a large one waits for one of ``BIG_MANIFEST_PUTS`` turns."""
        if length is not None and length <= INLINE_MANIFEST_BYTES:
            return contextlib.nullcontext()
        return self._big_puts

    async def decode(self, body: bytes, content_type: str | None) -> Decoded:
        """Decode a (stored or pushed) manifest; a large one off the event loop."""
        return await self._decode(body, content_type, None, self._limits.max_manifest_references)

    async def _decode(self, body: bytes, content_type: str | None, expected: Digest | None,
                      max_references: int) -> Decoded:
        if len(body) <= INLINE_MANIFEST_BYTES:
            return decode_manifest(body, content_type, expected, max_references)
        loop = asyncio.get_running_loop()
        for attempt in (1, 2):
            try:
                return await loop.run_in_executor(await self._executor(), decode_manifest, body,
                                                  content_type, expected, max_references)
            except BrokenProcessPool:  # the decoder died (killed?): start another, once
                self._decoder = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _executor(self) -> Executor:
        if self._decoder is None:
            # One at a time: concurrent big pushes take turns; the loop never waits for them.
            if self._in_process:
                # At a lower priority: on a busy machine the serving loop (pulls) goes first.
                pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                           initializer=os.nice, initargs=(10,))
                # The first submit starts the process (tens of ms): not on the loop.
                await asyncio.to_thread(lambda: pool.submit(int).result())
                if self._decoder is not None:  # another request started one meanwhile
                    pool.shutdown(wait=False)
                    return self._decoder
                self._decoder = pool
            else:
                self._decoder = ThreadPoolExecutor(1, thread_name_prefix="manifest-decode")
        return self._decoder

    def close(self) -> None:
        """Stop the decoder (a process of its own in ``strata serve``)."""
        if self._decoder is not None:
            self._decoder.shutdown(wait=False, cancel_futures=True)
            self._decoder = None

    def _checker(self, repo: RepositoryName, new: str | None) -> TagCheck:
        def check(tag: str, current: str | None, managed: bool) -> None:
            self._policy.check_sync(repo.value, tag, current, new, managed)
        return check

    def _held_checker(self, repo: RepositoryName, digest: str) -> HoldCheck:
        def check(managed: bool, holders: Sequence[HeldBy]) -> None:
            self._policy.check_delete_sync(repo.value, digest, False, managed, holders)
        return check

    async def put(self, repo: RepositoryName, ref: ManifestRef, body: bytes,
                  content_type: str | None, extra_tags: Sequence[str] = ()) -> PutResult:
        if len(body) > self._limits.max_manifest_bytes:
            raise RegistryError(Code.SIZE_INVALID, "manifest exceeds "
                                f"{self._limits.max_manifest_bytes} bytes", status=413)
        decoded = await self._decode(body, content_type, ref.digest,
                                     self._limits.max_manifest_references)
        digest, subject = decoded.digest, decoded.subject
        tags = [ref.tag] if ref.tag else []
        tags += [parse_tag(t) for t in extra_tags if t not in tags]
        references = [Reference(d, False) for d in decoded.blobs]
        references += [Reference(d, True) for d in decoded.children]
        record = ManifestRecord(
            repository=repo.value, digest=str(digest), media_type=decoded.media_type,
            size=len(body), content=body, artifact_type=decoded.artifact_type, subject=subject,
            annotations=decoded.annotations)
        def check_manifest(managed: bool) -> None:
            self._policy.check_manifest_sync(repo.value, decoded.artifact_type,
                                             decoded.layer_types, managed)
        await self._meta.put_manifest(record, references, tags,
                                      check_tag=self._checker(repo, str(digest)),
                                      check_manifest=check_manifest)
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
            ok = await self._meta.delete_manifest(
                repo.value, str(ref.digest), check_tag=self._checker(repo, None),
                check_held=self._held_checker(repo, str(ref.digest)))
        else:
            ok = await self._meta.delete_tag(repo.value, str(ref.tag),
                                             check_tag=self._checker(repo, None))
        if not ok:
            await self._unknown(repo, ref)
