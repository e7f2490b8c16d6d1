"""Token buckets shared by every worker process of a server: a table in a mapped file.

The login limits must hold for the server, not per worker: with the kernel spreading
connections over N workers, per-process buckets would give a password guesser N times the
budget. The buckets live in a small file in the data dir that every worker maps; each access
takes an exclusive ``flock`` on it (microseconds: failed logins are rare, and a login costs an
argon2 hash anyway). The file is recreated when the server starts (``reset``), so the
monotonic clock it stores is always this boot's.

Layout: a 16-byte random salt, then ``SLOTS`` records of (key hash, tokens, updated). A key
hashes (BLAKE2b keyed with the salt, so nobody can aim keys at one slot) to a run of
``PROBE`` slots; its bucket is the slot holding its hash, else a free or fully refilled one
(a full bucket carries no information), else the least recently updated one of the run —
memory stays bounded, at the price of resetting that bucket under a key-spraying flood, as
in :class:`strata.auth.ratelimit.RateLimiter`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import math
import mmap
import os
import secrets
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from strata.auth.ratelimit import bucket_level, check_parameters, seconds_until_token
from strata.storage.private import private_dir

__all__ = ["SharedRateLimiter"]

SLOTS = 4096
PROBE = 8
_SALT = 16
_RECORD = struct.Struct("<Qdd")  # key hash (0 = free), tokens, updated
_SIZE = _SALT + SLOTS * _RECORD.size


class SharedRateLimiter:
    """Token bucket per key: *burst* at once, then *rate_per_minute*; shared via *path*."""

    def __init__(self, path: Path, rate_per_minute: float, burst: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        check_parameters(rate_per_minute, burst)
        self._rate = rate_per_minute / 60.0
        self._burst = float(burst)
        self._clock = clock
        if not path.exists() or path.stat().st_size != _SIZE:
            self.reset(path)
        self._fd = os.open(path, os.O_RDWR)
        self._map = mmap.mmap(self._fd, _SIZE)
        self._salt = bytes(self._map[:_SALT])

    @staticmethod
    def reset(path: Path) -> None:
        """(Re)create the table empty, with a new salt: at server start, before the workers."""
        private_dir(path.parent)
        tmp = path.with_name(path.name + ".new")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)  # created 0600 below, never reused with another mode
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
            f.write(secrets.token_bytes(_SALT))
            f.truncate(_SIZE)
        os.replace(tmp, path)

    def close(self) -> None:
        self._map.close()
        os.close(self._fd)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _hash(self, key: str) -> int:
        digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8,
                                 key=self._salt).digest()
        return int.from_bytes(digest, "little") or 1  # 0 marks a free slot

    def _read(self, slot: int) -> tuple[int, float, float]:
        h, tokens, updated = _RECORD.unpack_from(self._map, _SALT + slot * _RECORD.size)
        return int(h), float(tokens), float(updated)

    def _write(self, slot: int, h: int, tokens: float, updated: float) -> None:
        _RECORD.pack_into(self._map, _SALT + slot * _RECORD.size, h, tokens, updated)

    def _level(self, tokens: float, updated: float, now: float) -> float:
        return bucket_level(tokens, updated, now, self._rate, self._burst)

    def _find(self, h: int, now: float) -> tuple[int, float]:
        """The slot of hash *h* and its current tokens (a fresh bucket if it had none)."""
        start = h % SLOTS
        run = [(start + i) % SLOTS for i in range(PROBE)]
        spare: int | None = None
        oldest, oldest_at = run[0], math.inf
        for slot in run:
            sh, tokens, updated = self._read(slot)
            if sh == h:
                return slot, self._level(tokens, updated, now)
            if spare is None and (sh == 0 or self._level(tokens, updated, now) >= self._burst):
                spare = slot
            if updated < oldest_at:
                oldest, oldest_at = slot, updated
        return (oldest if spare is None else spare), self._burst

    def hit(self, key: str) -> bool:
        """Spend one token for *key*: True = allowed, False = rate limited."""
        h = self._hash(key)
        with self._locked():
            now = self._clock()
            slot, tokens = self._find(h, now)
            allowed = tokens >= 1.0
            self._write(slot, h, tokens - 1.0 if allowed else tokens, now)
            return allowed

    def retry_after(self, key: str) -> int:
        """Whole seconds until *key* may hit again (0 = now); for a ``Retry-After`` header."""
        h = self._hash(key)
        with self._locked():
            now = self._clock()
            start = h % SLOTS
            for i in range(PROBE):
                sh, tokens, updated = self._read((start + i) % SLOTS)
                if sh == h:
                    return seconds_until_token(self._level(tokens, updated, now), self._rate)
            return 0
