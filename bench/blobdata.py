"""Deterministic, incompressible blob bodies produced chunk by chunk (never held whole).

A blob is a sequence of memoryview slices of one shared random pool; the offsets depend on the
seed, so each seed gives a different blob (and digest) while producing a chunk costs nothing.
The digest is computed once, ahead of the timed request, by running the same generator.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator, Iterator

CHUNK = 1 << 20
_POOL_SPAN = 32 << 20
_POOL = os.urandom(_POOL_SPAN + CHUNK)
_VIEW = memoryview(_POOL)
_digests: dict[tuple[int, int], str] = {}


def iter_chunks(seed: int, size: int, start: int = 0, end: int | None = None,
                chunk: int = CHUNK) -> Iterator[memoryview]:
    """Bytes ``[start, end)`` of blob ``seed`` (``size`` bytes in all), in pieces <= ``chunk``."""
    end = size if end is None else end
    pos = start
    while pos < end:
        index, within = divmod(pos, CHUNK)
        n = min(CHUNK - within, chunk, end - pos)
        # Knuth-style multiplicative offsets: distinct per (seed, index).
        base = ((seed + 1) * 2654435761 + index * 40503 * 4099) % _POOL_SPAN
        yield _VIEW[base + within: base + within + n]
        pos += n


async def aiter_chunks(seed: int, size: int, start: int = 0,
                       end: int | None = None) -> AsyncIterator[memoryview]:
    for piece in iter_chunks(seed, size, start, end):
        yield piece


def digest(seed: int, size: int) -> str:
    key = (seed, size)
    if key not in _digests:
        h = hashlib.sha256()
        for piece in iter_chunks(seed, size):
            h.update(piece)
        _digests[key] = "sha256:" + h.hexdigest()
    return _digests[key]
