"""Upload sessions in S3: the parts of a chunked or streamed upload become parts of one S3
multipart upload, whatever the client's chunk sizes (layout and states: :mod:`.s3_state`).

- A request streams its body into a local spool file only until the current part is full
  (``part_size`` bytes from the part's start, counting the tail already stored), then sends
  that part (``UploadPart``); what is left when the request ends is stored as a tail piece.
  The tail is read back once, when the part it begins is full, or when the upload finishes:
  at most one part's bytes, never the blob.
- Part numbers follow from offsets, so a request retried from the session's recorded offset
  (another node, after a crash) sends the same parts again; servers that refuse a different
  part under a number already streamed (``rclone serve s3``) make a client that sends other
  bytes there start a new upload (BLOB_UPLOAD_INVALID).
- Finishing (``upload_sync``, after the registry checked the digest it hashed while the
  bytes streamed): the tail becomes the last part and the multipart upload is completed under
  the session's staging key ``uploads/<id>/data``, then copied server-side to the blob's content
  address (:mod:`.s3_copy`: CopyObject, or UploadPartCopy above 5 GiB). An S3 multipart
  upload's key is fixed when it starts, before the digest is known, so the object cannot be
  born under its content address; the copy never passes through a node. A blob smaller than
  a part is one tail piece, copied the same way.
- Cancel, expiry and garbage collection abort the session's multipart uploads (found by
  listing, so one a dead node started is found too) and delete its objects.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

from botocore.exceptions import ClientError

from strata.errors import Code, RegistryError
from strata.oci.digest import Digest
from strata.storage.s3_copy import S3Copier
from strata.storage.s3_objects import S3Location, S3Objects, missing
from strata.storage.s3_state import Part, Piece, UploadState

DEFAULT_PART_SIZE = 16 << 20
_STATE = "state/"


def _conflict(what: str) -> RegistryError:
    return RegistryError(Code.BLOB_UPLOAD_INVALID, what,
                         message="the upload's stored parts changed (an abandoned or "
                                 "concurrent request sent other bytes); start the upload again")


class S3Uploads(S3Objects):
    def __init__(self, location: S3Location, spool_dir: Path, *,
                 part_size: int = DEFAULT_PART_SIZE) -> None:
        super().__init__(location, spool_dir)
        if part_size < 1:
            raise ValueError("part size must be positive")
        self.part_size = part_size
        self.copier = S3Copier(self._sync_s3(), self._bucket, self._prefix)
        # upload id -> (object to copy from, size): what upload_sync prepared, in case
        # upload_place finds the blob gone (a collector removed an identical old copy).
        self._prepared: dict[str, tuple[str | None, int]] = {}

    # -- keys ------------------------------------------------------------------------------
    def _state_key(self, upload_id: str, offset: int) -> str:
        return f"{self._upload_dir(upload_id)}{_STATE}{offset:020d}"

    def _staging_key(self, upload_id: str) -> str:
        return f"{self._upload_dir(upload_id)}data"

    def _piece_key(self, upload_id: str, start: int) -> str:
        # A name of its own per request: a request that failed after storing its piece
        # never overwrites the piece of the one that counts.
        return f"{self._upload_dir(upload_id)}piece/{start:020d}-{uuid.uuid4().hex[:12]}"

    # -- states ----------------------------------------------------------------------------
    async def _save(self, upload_id: str, offset: int, state: UploadState) -> None:
        await self._put(self._state_key(upload_id, offset), state.encode())

    async def _state_offsets(self, upload_id: str) -> list[int]:
        base = self._upload_dir(upload_id) + _STATE
        offsets = []
        async for obj in self._list(base):
            name = obj["Key"][len(base):]
            if name.isdigit():
                offsets.append(int(name))
        return sorted(offsets)

    async def _state_at(self, upload_id: str, offset: int) -> UploadState:
        """The session's state at ``offset``: the one recorded there, or one recorded later
        whose tail reaches back to ``offset`` (cut there). FileNotFoundError otherwise."""
        data = await self._get_bytes(self._state_key(upload_id, offset))
        if data is not None:
            return UploadState.decode(data)
        if offset == 0:
            return UploadState(self.part_size)
        for later in await self._state_offsets(upload_id):
            if later < offset:
                continue
            raw = await self._get_bytes(self._state_key(upload_id, later))
            if raw is None:
                continue
            state = UploadState.decode(raw)
            if not state.sealed and not state.staged and state.in_parts <= offset:
                return await self._cut_tail(upload_id, state, offset)
        raise FileNotFoundError(f"upload {upload_id} has no state at {offset}")

    async def _cut_tail(self, upload_id: str, state: UploadState, offset: int) -> UploadState:
        kept: list[Piece] = []
        start = state.in_parts
        for piece in state.tail:
            if start + piece.size <= offset:
                kept.append(piece)
            elif start < offset:
                head = b"".join([c async for c in self._get(piece.key, 0, offset - start)])
                key = self._piece_key(upload_id, start)
                await self._put(key, head)
                kept.append(Piece(key, len(head)))
            start += piece.size
        return replace(state, tail=tuple(kept))

    # -- writing ---------------------------------------------------------------------------
    async def upload_write(self, upload_id: str, offset: int,
                           batches: AsyncIterable[Sequence[bytes]]) -> int:
        await self._head(self._upload_dir(upload_id) + "owner")  # FileNotFoundError: cancelled
        state = await self._state_at(upload_id, offset)
        if state.sealed or state.staged:
            raise FileNotFoundError(f"upload {upload_id} was finished")
        consumed = state.in_parts
        pos = offset
        # Whatever arrived of an interrupted request is dropped with the spool file (and the
        # parts it sent are not in any recorded state): the session stays where it was.
        with self._spool_file(upload_id) as spool:
            async for batch in batches:
                for piece in batch:
                    view = memoryview(piece)
                    while view:
                        boundary = state.in_parts + state.part_size
                        take = view[:boundary - pos]
                        spool.write(take)
                        pos += len(take)
                        view = view[len(take):]
                        if pos == boundary:
                            state = await self._send_part(upload_id, state, spool,
                                                          pos - state.size)
                            spool.seek(0)
                            spool.truncate()
            if pos > state.size:
                spool.seek(0)
                key = self._piece_key(upload_id, state.size)
                await self._put(key, spool, pos - state.size)
                state = replace(state, tail=(*state.tail, Piece(key, pos - state.size)))
        await self._save(upload_id, pos, state)
        if consumed:
            await self._drop_pieces_before(upload_id, consumed)
        return pos

    async def _drop_pieces_before(self, upload_id: str, limit: int) -> None:
        """Delete the tail pieces gathered into parts that end at or before ``limit`` (the
        parts of the state this request started from: the recorded offset is past them, so no
        state that can still count names those pieces)."""
        s3 = await self._s3()
        base = self._upload_dir(upload_id) + "piece/"
        async for obj in self._list(base):
            start = obj["Key"][len(base):].partition("-")[0]
            if start.isdigit() and int(start) < limit:
                with contextlib.suppress(ClientError):
                    await s3.delete_object(Bucket=self._bucket, Key=obj["Key"])

    async def _send_part(self, upload_id: str, state: UploadState, spool: IO[bytes],
                         spooled: int) -> UploadState:
        """Send the tail pieces and ``spooled`` bytes of ``spool`` as the next part."""
        s3 = await self._s3()
        key = self._staging_key(upload_id)
        if state.mpu is None:
            created = await s3.create_multipart_upload(Bucket=self._bucket, Key=key)
            state = replace(state, mpu=created["UploadId"])
        assert state.mpu is not None
        size = sum(p.size for p in state.tail) + spooled
        with self._spool_file(upload_id) as body:
            if state.tail:
                for piece in state.tail:
                    async for chunk in self._get(piece.key):
                        body.write(chunk)
            spool.seek(0)
            await asyncio.to_thread(shutil.copyfileobj, spool, body)
            body.seek(0)
            try:
                sent = await s3.upload_part(Bucket=self._bucket, Key=key, UploadId=state.mpu,
                                            PartNumber=len(state.parts) + 1, Body=body,
                                            ContentLength=size)
            except ClientError as exc:
                if missing(exc):
                    raise FileNotFoundError(key) from None
                if exc.response.get("Error", {}).get("Code") in ("NotImplemented",
                                                                  "InvalidPart"):
                    raise _conflict(f"part {len(state.parts) + 1}") from None
                raise
        return state.with_part(Part(sent["ETag"], size))

    # -- reading back ----------------------------------------------------------------------
    async def upload_size(self, upload_id: str) -> int | None:
        # A request still streaming is not seen here (its parts are not recorded yet).
        if await self.upload_owner(upload_id) is None:
            return None
        offsets = await self._state_offsets(upload_id)
        return offsets[-1] if offsets else 0

    async def upload_owner(self, upload_id: str) -> tuple[str, float] | None:
        key = self._upload_dir(upload_id) + "owner"
        s3 = await self._s3()
        try:
            resp = await s3.get_object(Bucket=self._bucket, Key=key)
        except ClientError as exc:
            if missing(exc):
                return None
            raise
        async with resp["Body"] as body:
            repository = (await body.read()).decode("utf-8", "replace")
        return repository, resp["LastModified"].timestamp()

    async def upload_read(self, upload_id: str, end: int,
                          start: int = 0) -> AsyncIterator[bytes]:
        """Bytes of the tail are read from its pieces. Bytes in parts can only be read once
        the multipart upload is complete: asking for them stages the upload (only a finishing
        upload does: to hash it for a digest other than the running sha256)."""
        data = await self._get_bytes(self._state_key(upload_id, end))
        at = end
        if data is None:  # the first state that covers ``end``, else the last one (clamped)
            offsets = await self._state_offsets(upload_id)
            if not offsets:
                await self._head(self._upload_dir(upload_id) + "owner")
                return
            at = next((o for o in offsets if o >= end), offsets[-1])
            end = min(end, at)
            data = await self._get_bytes(self._state_key(upload_id, at))
            if data is None:
                raise FileNotFoundError(f"upload {upload_id} changed while read")
        state = UploadState.decode(data)
        if start >= state.in_parts and not state.staged:
            offset = state.in_parts
            for piece in state.tail:
                lo, hi = max(start, offset), min(end, offset + piece.size)
                if lo < hi:
                    async for chunk in self._get(piece.key, lo - offset, hi - offset):
                        yield chunk
                offset += piece.size
            return
        if not state.staged:
            state = await self._stage(upload_id, state, at)
        async for chunk in self._get(self._staging_key(upload_id), start, end):
            yield chunk

    # -- finishing -------------------------------------------------------------------------
    async def _stage(self, upload_id: str, state: UploadState, end: int) -> UploadState:
        """Make the session's bytes one object under its staging key: the tail sent as the
        last part and the multipart upload completed (or, with no part, the tail pieces put
        together: less than one part)."""
        s3 = await self._s3()
        key = self._staging_key(upload_id)
        if state.parts:
            if state.tail:
                with self._spool_file(upload_id) as empty:
                    state = await self._send_part(upload_id, state, empty, 0)
            assert state.mpu is not None
            try:
                await s3.complete_multipart_upload(
                    Bucket=self._bucket, Key=key, UploadId=state.mpu,
                    MultipartUpload={"Parts": [{"PartNumber": n, "ETag": p.etag}
                                               for n, p in enumerate(state.parts, 1)]})
            except ClientError as exc:
                if missing(exc):
                    raise FileNotFoundError(key) from None
                if exc.response.get("Error", {}).get("Code") == "InvalidPart":
                    raise _conflict("complete") from None
                raise
        else:
            with self._spool_file(upload_id) as body:
                for piece in state.tail:
                    async for chunk in self._get(piece.key):
                        body.write(chunk)
                size = body.tell()
                body.seek(0)
                await self._put(key, body, size)
        state = replace(state, tail=(), staged=True)
        await self._save(upload_id, end, state)
        return state

    async def upload_sync(self, upload_id: str, digest: Digest, size: int) -> None:
        """Put the blob under its content address (the registry checked the digest): unless
        it is there already, the staged object (or the one tail piece) is copied server-side."""
        target = self._blob_key(digest)
        state = await self._state_at(upload_id, size)
        if state.staged:
            source: str | None = self._staging_key(upload_id)
        elif state.parts or len(state.tail) > 1:
            await self._stage(upload_id, state, size)
            source = self._staging_key(upload_id)
        else:
            source = state.tail[0].key if state.tail else None
        self._prepared[upload_id] = (source, size)
        if not await self._exists(target):
            await asyncio.to_thread(self._place, source, target, size)

    def upload_place(self, upload_id: str, digest: Digest, size: int | None = None) -> bool:
        """Confirm the blob object is there (``upload_sync`` put it; if a collector removed an
        identical unreferenced copy since, it is copied again, inside the transaction); the
        upload's objects are left for ``upload_abort`` (returns False)."""
        target = self._blob_key(digest)
        try:
            self._sync_s3().head_object(Bucket=self._bucket, Key=target)
            return False
        except ClientError as exc:
            if not missing(exc):
                raise
        prepared = self._prepared.get(upload_id)
        if prepared is None:
            raise FileNotFoundError(f"upload {upload_id} was not prepared (upload_sync)")
        self._place(prepared[0], target, prepared[1])
        return False

    def _place(self, source: str | None, target: str, size: int) -> None:
        if source is None:  # the empty blob
            self._sync_s3().put_object(Bucket=self._bucket, Key=target, Body=b"")
        else:
            self.copier.copy(source, target, size)

    def persist_placed(self, digests: list[str]) -> None:
        """Nothing to do: an S3 object is durable once its PUT is answered."""

    # -- ending ----------------------------------------------------------------------------
    async def upload_abort(self, upload_id: str) -> None:
        self._prepared.pop(upload_id, None)
        s3 = await self._s3()
        prefix = self._upload_dir(upload_id)
        async for key, mpu, _ in self._multipart_uploads(prefix):
            with contextlib.suppress(ClientError):
                await s3.abort_multipart_upload(Bucket=self._bucket, Key=key, UploadId=mpu)
        keys = [obj["Key"] async for obj in self._list(prefix)]
        for key in keys:
            with contextlib.suppress(ClientError):
                await s3.delete_object(Bucket=self._bucket, Key=key)

    async def _multipart_uploads(self, prefix: str) -> AsyncIterator[tuple[str, str, float]]:
        """(key, upload id, start time) of the unfinished multipart uploads under ``prefix``."""
        s3 = await self._s3()
        paginator = s3.get_paginator("list_multipart_uploads")
        pages = paginator.paginate(Bucket=self._bucket, Prefix=prefix)
        try:
            async for page in pages:
                for item in page.get("Uploads", []):
                    started: Any = item.get("Initiated")
                    yield item["Key"], item["UploadId"], started.timestamp() if started else 0.0
        except ClientError as exc:
            if not missing(exc):  # rclone answers NoSuchUpload when there is none
                raise

    async def uploads_started_before(self, cutoff: float) -> list[str]:
        """Sessions whose owner object is older than ``cutoff``, and multipart uploads of
        sessions that have no owner left (an abort interrupted) started before it."""
        base = f"{self._prefix}uploads/"
        stale: set[str] = set()
        owned: set[str] = set()
        async for obj in self._list(base):
            upload_id, _, name = obj["Key"][len(base):].partition("/")
            if name == "owner":
                owned.add(upload_id)
                if obj["LastModified"].timestamp() < cutoff:
                    stale.add(upload_id)
        async for key, _, started in self._multipart_uploads(base):
            upload_id = key[len(base):].partition("/")[0]
            if upload_id not in owned and started < cutoff:
                stale.add(upload_id)
        return sorted(stale)
