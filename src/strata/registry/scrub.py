"""``strata scrub``: prove that what the registry serves is what was pushed.

Every blob row is checked against the blob store (present, the recorded size, and unless
``quick`` the bytes hash to the digest they are stored under), and every stored manifest's bytes
against its digest. Read-only: it reports, an operator decides (restore from a backup, delete
the image and push it again). Orphan files (bytes with no row) are garbage collection's.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from strata.errors import RegistryError
from strata.oci.digest import Digest
from strata.storage.base import BlobStore, LocalBlobPaths

_PAGE = 500


class ScrubSource(Protocol):
    async def blobs_after(self, after: str, limit: int) -> list[tuple[str, int]]: ...
    async def manifests_after(self, after: tuple[str, str], limit: int
                              ) -> list[tuple[str, str, bytes]]: ...


@dataclass(frozen=True, slots=True)
class Problem:
    kind: str  # "blob" or "manifest"
    digest: str
    problem: str  # "missing", "size", "digest", "unreadable"
    detail: str
    repository: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "digest": self.digest,
                               "problem": self.problem, "detail": self.detail}
        if self.repository is not None:
            out["repository"] = self.repository
        return out


@dataclass
class ScrubReport:
    quick: bool
    blobs: int = 0
    blob_bytes: int = 0
    manifests: int = 0
    problems: list[Problem] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "quick": self.quick, "blobs": self.blobs,
                "blob_bytes": self.blob_bytes, "manifests": self.manifests,
                "problems": [p.to_json() for p in self.problems],
                "seconds": round(self.seconds, 3)}


class Scrubber:
    def __init__(self, source: ScrubSource, store: BlobStore,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._source = source
        self._store = store
        self._clock = clock

    async def run(self, *, quick: bool = False) -> ScrubReport:
        started = self._clock()
        report = ScrubReport(quick=quick)
        after = ""
        while page := await self._source.blobs_after(after, _PAGE):
            for digest, size in page:
                report.blobs += 1
                problem = await self._check_blob(digest, size, quick)
                if problem is None:
                    report.blob_bytes += size
                else:
                    report.problems.append(problem)
            after = page[-1][0]
        key = ("", "")
        while rows := await self._source.manifests_after(key, _PAGE):
            for repository, digest, content in rows:
                report.manifests += 1
                problem = _check_manifest(repository, digest, content)
                if problem is not None:
                    report.problems.append(problem)
            key = (rows[-1][0], rows[-1][1])
        report.seconds = self._clock() - started
        return report

    async def _check_blob(self, text: str, size: int, quick: bool) -> Problem | None:
        parsed = _parse("blob", text)
        if isinstance(parsed, Problem):
            return parsed
        digest, hasher = parsed
        seen = 0
        try:
            if quick and isinstance(self._store, LocalBlobPaths):
                seen = os.stat(self._store.blob_path(digest)).st_size
            else:
                async for chunk in self._store.read(digest):
                    seen += len(chunk)
                    if not quick:
                        await asyncio.to_thread(hasher.update, chunk)
        except FileNotFoundError:
            return Problem("blob", text, "missing", "no bytes in the blob store")
        except OSError as exc:
            return Problem("blob", text, "unreadable", str(exc))
        if seen != size:
            return Problem("blob", text, "size", f"recorded {size} bytes, stored {seen}")
        return None if quick else _mismatch("blob", digest, hasher)


def _check_manifest(repository: str, text: str, content: bytes) -> Problem | None:
    parsed = _parse("manifest", text, repository)
    if isinstance(parsed, Problem):
        return parsed
    digest, hasher = parsed
    hasher.update(content)
    return _mismatch("manifest", digest, hasher, repository)


def _parse(kind: str, text: str, repository: str | None = None) -> tuple[Digest, Any] | Problem:
    try:
        digest = Digest.parse(text)
        return digest, digest.hasher()
    except (RegistryError, ValueError) as exc:
        return Problem(kind, text, "digest", f"not a digest this registry can check: {exc}",
                       repository)


def _mismatch(kind: str, digest: Digest, hasher: Any,
              repository: str | None = None) -> Problem | None:
    if hasher.hexdigest() == digest.encoded:
        return None
    return Problem(kind, str(digest), "digest",
                   f"the stored bytes hash to {digest.algorithm}:{hasher.hexdigest()}",
                   repository)
