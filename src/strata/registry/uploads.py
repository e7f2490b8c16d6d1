"""Blob upload sessions (distribution-spec "Pushing blobs": POST, PATCH, PUT, GET, DELETE).

Bytes are hashed while they stream to the store. Each process keeps the running sha256 of the
sessions it is serving, and each recorded chunk saves its state with the offset (``rehashes``
serializes a sha256 mid-stream), so a chunked upload is never read back: a session continued
by another worker or node (or after a restart) resumes the hash from the saved state. Only a
digest of another algorithm (sha512), or a session recorded without a state, hashes the stored
bytes. A failed or interrupted request leaves the session at the offset it had before it.
"""

from __future__ import annotations

import asyncio
import functools
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from rehashes import PySha256

from strata.errors import Code, RegistryError
from strata.meta.records import UploadRecord
from strata.oci.digest import Digest
from strata.oci.names import RepositoryName
from strata.registry.limits import Limits
from strata.registry.ports import MetaStore
from strata.registry.pump import BlockingBody, BufferPool, pump_on_thread
from strata.storage.base import BlobStore, BlockingUploadSync, BlockingUploadWriter, UploadBusy

_MAX_CACHED_HASHERS = 4096
_HASH_BATCH = 1 << 20
_INLINE_HASH = 128 << 10  # batches up to this size are hashed on the event loop
_UPLOAD_ID = re.compile(r"[0-9a-f]{32}")
_BUFFERS_IDLE = 1.0  # seconds without a big body before a worker frees its body buffers


@dataclass(frozen=True, slots=True)
class ContentRange:
    start: int
    end: int  # inclusive

    @classmethod
    def parse(cls, header: str) -> ContentRange:
        text = header.strip()
        if text.startswith("bytes "):
            text = text[6:].strip()
        text = text.split("/", 1)[0]
        start_s, sep, end_s = text.partition("-")
        if not sep or not start_s.isdigit() or not end_s.isdigit() or int(end_s) < int(start_s):
            raise RegistryError(Code.BLOB_UPLOAD_INVALID, f"bad Content-Range {header[:100]!r}",
                                status=416)
        return cls(int(start_s), int(end_s))

    @property
    def length(self) -> int:
        return self.end - self.start + 1


class UploadService:
    def __init__(self, meta: MetaStore, store: BlobStore, limits: Limits,
                 clock: Callable[[], float] = time.time) -> None:
        self._meta = meta
        self._store = store
        self._limits = limits
        self._clock = clock
        self._hashers: OrderedDict[str, tuple[int, Any]] = OrderedDict()
        # checked once: an isinstance against a Protocol costs microseconds
        self._sync_blocking = store if isinstance(store, BlockingUploadSync) else None
        self._writer_store = store if isinstance(store, BlockingUploadWriter) else None
        self._buffers = BufferPool()

    @property
    def takes_blocking_bodies(self) -> bool:
        """Whether a ``TakeableBody`` is taken (and read on threads) where it can be: the
        store can write from a thread."""
        return self._writer_store is not None

    async def start(self, repo: RepositoryName, account: str | None = None) -> UploadRecord:
        """Open a session. With an ``account`` (every push once authentication is on) the
        session is recorded with it at once, and refused with 429 when the account has
        ``max_upload_sessions`` open already (idle empty ones do not count)."""
        now = self._clock()
        rec = UploadRecord(uuid.uuid4().hex, repo.value, 0, now, now, account)
        if account is not None:
            cap = self._limits.max_upload_sessions
            held = await self._meta.open_upload(
                rec, cap, now - self._limits.upload_idle_seconds,
                now - self._limits.upload_ttl_seconds)
            if held >= cap:
                raise RegistryError(
                    Code.TOOMANYREQUESTS, {"account": account, "open_sessions": held},
                    message=f"too many requests: {account} has {held} open upload sessions, "
                            f"the most allowed is {cap}; finish or cancel (DELETE) some, or "
                            "wait for idle ones to expire",
                    headers={"Retry-After": "60"})
        await self._store.upload_start(rec.id, repo.value)
        return rec

    async def status(self, repo: RepositoryName, upload_id: str) -> UploadRecord:
        if not _UPLOAD_ID.fullmatch(upload_id):
            raise RegistryError(Code.BLOB_UPLOAD_UNKNOWN, {"upload": upload_id[:100]})
        rec = await self._meta.get_upload(upload_id)
        if rec is None:  # no chunk recorded yet: the session is its (empty) upload
            owner = await self._store.upload_owner(upload_id)
            if owner is not None:
                rec = UploadRecord(upload_id, owner[0], 0, owner[1], owner[1])
        if rec is None or rec.repository != repo.value:
            raise RegistryError(Code.BLOB_UPLOAD_UNKNOWN, {"upload": upload_id[:100]})
        idle = self._clock() - rec.updated_at
        if idle > self._limits.upload_ttl_seconds or (
                rec.size == 0 and idle > self._limits.upload_idle_seconds):
            raise RegistryError(Code.BLOB_UPLOAD_UNKNOWN, "upload session expired")
        return rec

    async def append(self, repo: RepositoryName, upload_id: str,
                     body: AsyncIterable[bytes],
                     content_range: ContentRange | None = None,
                     content_length: int | None = None) -> UploadRecord:
        rec = await self.status(repo, upload_id)
        if content_range is not None:
            if content_range.start != rec.size:
                raise RegistryError(
                    Code.BLOB_UPLOAD_INVALID,
                    f"chunk starts at {content_range.start}, session is at {rec.size}",
                    message="chunk out of order", status=416,
                    headers={"Range": _range(rec.size)})
            if content_length is not None and content_length != content_range.length:
                raise RegistryError(Code.SIZE_INVALID,
                                    "Content-Length does not match Content-Range")
            content_length = content_range.length
        try:
            return await self._write(rec, body, content_length)
        except UploadBusy as exc:
            raise _busy(exc, rec) from None

    async def _write(self, rec: UploadRecord, body: AsyncIterable[bytes],
                     expected: int | None, *, record: bool = True) -> UploadRecord:
        hasher = await self._take_hasher(rec)
        limit = self._limits.max_blob_bytes - rec.size
        # a TakeableBody (looked up by name: an isinstance against a Protocol costs
        # microseconds, on every blob PUT)
        take = getattr(body, "take", None) if self._writer_store is not None else None
        taken: BlockingBody | None = take() if take is not None else None
        if taken is None:
            new_size, received = await self._stream(rec, body, hasher, limit, expected)
        else:
            if expected is not None and expected != taken.length:
                raise RegistryError(Code.SIZE_INVALID,
                                    "Content-Length does not match Content-Range")
            new_size = rec.size + await self._pump(rec, taken, hasher, limit)
            received = taken.length
        # The last chunk of a finishing upload needs no bookkeeping: the session ends now, and
        # if the process dies first the next request truncates back to the recorded offset.
        if received and record and not await self._meta.advance_upload(
                rec.id, rec.repository, rec.size, new_size, hasher.serialize()):
            raise RegistryError(Code.BLOB_UPLOAD_INVALID, "upload changed concurrently",
                                status=416)
        self._put_hasher(rec.id, new_size, hasher)
        return UploadRecord(rec.id, rec.repository, new_size, rec.created_at, self._clock())

    async def _pump(self, rec: UploadRecord, body: BlockingBody, hasher: Any,
                    limit: int) -> int:
        store = self._writer_store
        assert store is not None, "a blocking body needs a store that writes from threads"
        if body.length > limit:
            raise RegistryError(Code.SIZE_INVALID, "blob exceeds the registry's size limit "
                                f"of {self._limits.max_blob_bytes} bytes", status=413)
        try:
            return await pump_on_thread(
                body, hasher, functools.partial(store.upload_writer, rec.id, rec.size),
                rec.size, limit, self._buffers)
        except FileNotFoundError:
            raise RegistryError(Code.BLOB_UPLOAD_UNKNOWN, "upload data is gone") from None
        finally:
            asyncio.get_running_loop().call_later(
                _BUFFERS_IDLE, self._buffers.trim_if_idle, _BUFFERS_IDLE)

    async def _stream(self, rec: UploadRecord, body: AsyncIterable[bytes], hasher: Any,
                      limit: int, expected: int | None) -> tuple[int, int]:
        """Write a body arriving on the loop; (the upload's new size, bytes received)."""
        received = 0

        async def batches() -> AsyncIterator[list[bytes]]:
            # Pieces gathered into batches of about 1 MiB, never joined (no copy); the limits
            # are checked as the pieces arrive.
            nonlocal received
            batch: list[bytes] = []
            batched = 0
            async for chunk in body:
                received += len(chunk)
                if received > limit:
                    raise RegistryError(Code.SIZE_INVALID, "blob exceeds the registry's "
                                        f"size limit of {self._limits.max_blob_bytes} bytes",
                                        status=413)
                if expected is not None and received > expected:
                    raise RegistryError(Code.SIZE_INVALID, "body longer than declared")
                batch.append(chunk)
                batched += len(chunk)
                if batched >= _HASH_BATCH:
                    yield batch
                    batch, batched = [], 0
            if batch:
                yield batch

        async def hashing() -> AsyncIterator[list[bytes]]:
            # Each batch, the last one too, is hashed on a thread (the hasher lets go of the
            # GIL) while the store writes it with one writev and the loop reads the next one;
            # a small one (a small blob's whole body) on the loop: ~50 us for 64 KiB, less
            # than a hop to a thread and back.
            loop = asyncio.get_running_loop()
            pending: asyncio.Future[None] | None = None
            try:
                async for batch in batches():
                    if pending is not None:
                        await pending
                        pending = None
                    if sum(map(len, batch)) <= _INLINE_HASH:
                        _update(hasher, batch)
                    else:
                        pending = loop.run_in_executor(None, _update, hasher, batch)
                    yield batch
            finally:
                if pending is not None:
                    await asyncio.shield(pending)  # never leave a thread updating the hasher

        try:
            new_size = await self._store.upload_write(rec.id, rec.size, hashing())
        except FileNotFoundError:
            raise RegistryError(Code.BLOB_UPLOAD_UNKNOWN, "upload data is gone") from None
        if expected is not None and received != expected:
            await self._store.upload_write(rec.id, rec.size, _nothing())
            raise RegistryError(Code.SIZE_INVALID,
                                f"received {received} bytes, declared {expected}")
        return new_size, received

    async def finish(self, repo: RepositoryName, upload_id: str, digest: Digest,
                     body: AsyncIterable[bytes] | None = None,
                     content_length: int | None = None) -> int:
        """Complete the upload with an optional last chunk; returns the blob's size."""
        rec = recorded = await self.status(repo, upload_id)
        try:
            if body is None and rec.size == 0:
                body = _no_body()  # the empty blob: no PATCH ever created the upload's data
            if body is not None:
                rec = await self._write(rec, body, content_length, record=False)
            if digest.algorithm == "sha256":
                hexdigest = (await self._take_hasher(rec)).finalize()
            else:
                hexdigest = (await self._hash_stored(rec, digest.hasher(), 0)).hexdigest()
            if hexdigest != digest.encoded:
                await self.cancel(repo, upload_id)
                raise RegistryError(Code.DIGEST_INVALID, {"digest": str(digest)})
            prepare = None
            if self._sync_blocking is not None:  # synced on the thread that queues the commit
                prepare = functools.partial(self._sync_blocking.upload_sync_blocking, rec.id,
                                            digest, rec.size)
            else:
                await self._store.upload_sync(rec.id, digest, rec.size)
            placed: list[bool] = []
            await self._meta.finish_upload(
                rec.id, repo.value, str(digest), rec.size,
                lambda: placed.append(self._store.upload_place(rec.id, digest, rec.size)),
                self._store.persist_placed, prepare)
            if placed and not placed[0]:
                # What is left of the upload: the blob was stored already, or the store copied it.
                await self._store.upload_abort(rec.id)
            return rec.size
        except UploadBusy as exc:
            raise _busy(exc, recorded) from None  # a last chunk in this PUT is not recorded

    async def cancel(self, repo: RepositoryName, upload_id: str) -> None:
        rec = await self.status(repo, upload_id)
        self._hashers.pop(upload_id, None)
        await self._meta.delete_upload(rec.id)
        await self._store.upload_abort(rec.id)

    async def expire(self) -> int:
        """Drop sessions idle for longer than the upload TTL, and those that received nothing
        for ``upload_idle_seconds``; returns how many."""
        now = self._clock()
        cutoff = now - self._limits.upload_ttl_seconds
        idle = now - self._limits.upload_idle_seconds
        gone = {rec.id for rec in await self._meta.stale_uploads(cutoff, idle)}
        for upload_id in await self._store.uploads_started_before(max(cutoff, idle)):
            rec = await self._meta.get_upload(upload_id)
            if rec is None or rec.updated_at < cutoff or (rec.size == 0
                                                          and rec.updated_at < idle):
                gone.add(upload_id)
        started_long_ago = set(await self._store.uploads_started_before(cutoff))
        for upload_id in list(gone):
            # "Received nothing" is judged from the stored bytes too: a single request
            # streaming a big blob (recorded only when it ends) keeps its session.
            rec = await self._meta.get_upload(upload_id)
            recent = rec.updated_at >= cutoff if rec is not None \
                else upload_id not in started_long_ago
            if recent and await self._store.upload_size(upload_id):
                gone.discard(upload_id)
        for upload_id in gone:
            self._hashers.pop(upload_id, None)
            await self._meta.delete_upload(upload_id)
            await self._store.upload_abort(upload_id)
        return len(gone)

    # -- running hashes --------------------------------------------------------------------
    async def _take_hasher(self, rec: UploadRecord) -> Any:
        """The running sha256 of the session's first ``rec.size`` bytes.

        The one this process left at that offset, else the state saved with the offset
        (another worker or node took the chunks since: nothing is read back). Without a saved
        state (a session recorded before migration 0017) a hasher left at an earlier offset
        catches up on the chunks since, else the stored bytes are hashed once."""
        cached = self._hashers.pop(rec.id, None)
        if cached is not None and cached[0] == rec.size:
            return cached[1]
        if rec.hash_state is not None and rec.size:
            return PySha256.deserialize(rec.hash_state)  # saved with this very offset
        if cached is not None and cached[0] < rec.size:
            offset, hasher = cached
        else:
            offset, hasher = 0, PySha256()
        if offset == rec.size:  # the usual case: this process took the previous chunk
            return hasher
        return await self._hash_stored(rec, hasher, offset)

    async def _hash_stored(self, rec: UploadRecord, hasher: Any, offset: int) -> Any:
        """Feed the session's stored bytes ``[offset, rec.size)`` to ``hasher`` (on a thread)."""
        loop = asyncio.get_running_loop()
        try:
            async for chunk in self._store.upload_read(rec.id, rec.size, offset):
                await loop.run_in_executor(None, hasher.update, chunk)
        except FileNotFoundError:
            raise RegistryError(Code.BLOB_UPLOAD_UNKNOWN, "upload data is gone") from None
        return hasher

    def _put_hasher(self, upload_id: str, size: int, hasher: Any) -> None:
        self._hashers[upload_id] = (size, hasher)
        while len(self._hashers) > _MAX_CACHED_HASHERS:
            self._hashers.popitem(last=False)


def _busy(exc: UploadBusy, rec: UploadRecord) -> RegistryError:
    """Another request is writing to the session: this one is refused, nothing it sent is
    kept, and the session stays where it was recorded."""
    return RegistryError(Code.BLOB_UPLOAD_INVALID, {"upload": rec.id, "reason": str(exc)},
                         message="upload busy: another request is writing to this upload "
                                 "session; retry from the offset in Range",
                         status=416, headers={"Range": _range(rec.size)})


def _range(size: int) -> str:
    return f"0-{max(size - 1, 0)}"


def _update(hasher: Any, pieces: list[bytes]) -> None:
    for piece in pieces:
        hasher.update(piece)


async def _nothing() -> AsyncIterator[list[bytes]]:
    return
    yield []


async def _no_body() -> AsyncIterator[bytes]:
    return
    yield b""
