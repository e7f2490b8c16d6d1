"""The state of one S3 upload session at one offset (see :mod:`strata.storage.s3`).

An upload's bytes are the parts of one S3 multipart upload (every part ``part_size`` bytes,
numbered from 1, so a part's number follows from its offset), followed by a *tail* shorter than
a part: small objects (one per request that ended inside a part), gathered into the next part
once it is full. The state after a request that ended at offset N is the object
``uploads/<id>/state/<N, 20 digits>``; the offset the metadata database recorded for the
session picks the state that counts, so a request that failed (or whose node died) after
writing its state changes nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace

MIN_PART_SIZE = 5 << 20  # AWS S3's smallest part (but the last)
MAX_PARTS = 10_000  # AWS S3's most parts in one multipart upload


@dataclass(frozen=True, slots=True)
class Piece:
    key: str
    size: int


@dataclass(frozen=True, slots=True)
class Part:
    etag: str
    size: int


@dataclass(frozen=True, slots=True)
class UploadState:
    part_size: int
    mpu: str | None = None  # the multipart upload id, once a part was sent
    parts: tuple[Part, ...] = ()
    tail: tuple[Piece, ...] = ()
    sealed: bool = False  # the multipart upload is complete: the bytes are the staged object
    staged: bool = field(default=False)  # the bytes are one object under the staging key

    @property
    def in_parts(self) -> int:
        return sum(p.size for p in self.parts)

    @property
    def size(self) -> int:
        return self.in_parts + sum(p.size for p in self.tail)

    def with_part(self, part: Part) -> UploadState:
        return replace(self, parts=(*self.parts, part), tail=())

    def encode(self) -> bytes:
        return json.dumps({
            "part_size": self.part_size, "mpu": self.mpu,
            "parts": [[p.etag, p.size] for p in self.parts],
            "tail": [[p.key, p.size] for p in self.tail],
            "sealed": self.sealed, "staged": self.staged,
        }, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, data: bytes) -> UploadState:
        raw = json.loads(data)
        return cls(part_size=int(raw["part_size"]), mpu=raw.get("mpu"),
                   parts=tuple(Part(str(e), int(s)) for e, s in raw.get("parts", [])),
                   tail=tuple(Piece(str(k), int(s)) for k, s in raw.get("tail", [])),
                   sealed=bool(raw.get("sealed")), staged=bool(raw.get("staged")))


def effective_part_size(part_size: int, max_blob_bytes: int) -> int:
    """``part_size``, raised where needed so a blob of ``max_blob_bytes`` fits in S3's 10,000
    parts."""
    return max(part_size, -(-max_blob_bytes // MAX_PARTS))
