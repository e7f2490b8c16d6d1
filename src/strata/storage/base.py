"""The BlobStore protocol (and its optional powers).

A blob store keeps committed blobs, keyed by digest, and the bytes of unfinished uploads, keyed
by upload id. It does no hashing and no bookkeeping: the registry use-cases hash while they
stream, check digest and size, and only then ask the store to commit.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Sequence
from typing import Protocol, runtime_checkable

from strata.oci.digest import Digest


class StorageUnavailable(Exception):
    """The blob store cannot be reached (an S3 endpoint down, refusing or timing out): the
    request may succeed later. The server answers 503 UNAVAILABLE with ``Retry-After``."""


class UploadBusy(Exception):
    """Another request is writing to this upload (or the upload changed under the request):
    a session takes one writer at a time, and a blob is placed only as the bytes its digest
    was checked against."""


class BlobStore(Protocol):
    def read(self, digest: Digest, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Bytes ``[start, end)`` of a committed blob."""
        ...

    def remove_now(self, digest: Digest) -> None:
        """Delete a committed blob synchronously (garbage collection calls this inside the
        metadata transaction that drops the blob's row)."""
        ...

    def digests(self) -> AsyncIterator[tuple[Digest, int, float]]:
        """Every committed blob as (digest, size, modification time), for garbage collection."""
        ...

    async def upload_start(self, upload_id: str, repository: str) -> None:
        """Create an empty upload owned by ``repository``."""
        ...

    async def upload_owner(self, upload_id: str) -> tuple[str, float] | None:
        """(repository, start time) of an unfinished upload, or None. A store may give the
        time of the upload's last write instead (idle expiry counts from it)."""
        ...

    async def upload_size(self, upload_id: str) -> int | None:
        """Bytes stored so far for an unfinished upload (also of a request still streaming,
        where the store can see them), or None when it is gone."""
        ...

    async def upload_write(self, upload_id: str, offset: int,
                           batches: AsyncIterable[Sequence[bytes]]) -> int:
        """Write ``batches`` of pieces at ``offset`` (dropping anything after it); return the
        new size."""
        ...

    def upload_read(self, upload_id: str, end: int, start: int = 0) -> AsyncIterator[bytes]:
        """Bytes ``[start, end)`` of an unfinished upload (to hash it for a digest other than
        the running sha256, or to resume hashing without a saved state)."""
        ...

    async def upload_sync(self, upload_id: str, digest: Digest, size: int) -> None:
        """Make the upload's first ``size`` bytes (all of it: the registry checked their
        digest) durable before they are placed as the blob ``digest``. A store may prepare
        the placement here, outside the metadata transaction (S3 completes its multipart
        upload and copies it under the content address)."""
        ...

    def upload_place(self, upload_id: str, digest: Digest, size: int | None = None) -> bool:
        """Make the upload's bytes (``size`` of them, where given: UploadBusy if the upload holds
        another count or is being written) the blob ``digest``, atomically; synchronous, because
        it runs inside the metadata transaction that records the blob. The placement may not
        survive a power loss until ``persist_placed`` has run. True when the upload's bytes were
        moved into place (nothing of the upload is left); False when something of the upload is
        left for ``upload_abort`` to delete after the commit: the blob was stored already, or
        the store copied the bytes (S3)."""
        ...

    def persist_placed(self, digests: list[str]) -> None:
        """Make the placements of ``digests`` durable; runs once per metadata commit, before
        it (one directory fsync serves every blob placed in that directory)."""
        ...

    async def upload_abort(self, upload_id: str) -> None:
        """Delete an upload's bytes and owner (cancel, expiry, or after it was placed)."""
        ...

    async def uploads_started_before(self, cutoff: float) -> list[str]:
        """Ids of unfinished uploads started before ``cutoff`` (for expiry)."""
        ...

    async def close(self) -> None:
        """Release connections (on the loop that used them)."""
        ...


@runtime_checkable
class BlockingUploadSync(Protocol):
    """Optional power: ``upload_sync`` as a blocking call (for a thread). The registry then
    hands it to the metadata writer, which runs it on a thread that queues the transaction
    right after: one hop off the event loop per finished upload instead of two."""

    def upload_sync_blocking(self, upload_id: str, digest: Digest, size: int) -> None: ...


@runtime_checkable
class LocalBlobPaths(Protocol):
    """Optional power: committed blobs are local files (lets the server use sendfile)."""

    def blob_path(self, digest: Digest) -> str:
        """The blob's file (a plain string: a ``Path`` would intern the digest)."""
        ...


class UploadWriter(Protocol):
    """An upload's body written from a thread, piece by piece, in order (see
    ``BlockingUploadWriter``). Every method blocks."""

    def first_fill(self, size: int) -> int:
        """How many bytes the first buffer of ``size`` should hold (fewer where the store
        wants the later ones to start at an aligned offset)."""
        ...

    def write(self, data: memoryview, pos: int) -> None:
        """Write ``data`` at ``pos``; ``data`` lies in a page-aligned buffer."""
        ...

    def finish(self) -> int:
        """Everything written; the upload's new size."""
        ...

    def abort(self) -> None:
        """Drop what this writer wrote (the upload is back at the offset it started from)."""
        ...

    def close(self) -> None:
        ...


@runtime_checkable
class BlockingUploadWriter(Protocol):
    """Optional power: an upload body written from threads (a body read straight from the
    connection, see ``strata.registry.pump``) instead of as batches handed over on the loop."""

    def upload_writer(self, upload_id: str, offset: int) -> UploadWriter:
        """A writer at ``offset`` of the upload, dropping anything after it; blocking (call it
        on a thread). FileNotFoundError when the upload is gone."""
        ...
