"""A keyed token-bucket rate limiter with bounded memory and an injectable clock.

Each key (typically :func:`rate_limit_key` of client IP and username) owns a
bucket holding up to ``burst`` tokens, refilled continuously at
``rate_per_minute``; a request spends one token.  A bucket that has refilled
completely carries no information (it behaves exactly like a brand-new one),
so it is forgotten: idle keys are evicted lazily, least recently used first.
If more than ``max_keys`` keys are still active, the least recently used is
evicted anyway -- memory stays bounded, at the price of resetting that key's
bucket under a key-spraying flood.

A lock guards the table, so one limiter can be shared between the event loop
and worker threads; no call blocks for longer than a dictionary update.

A login spends from two buckets (:class:`LoginLimits`): client IP + user name, and client IP.
:class:`LoginBudget` is what the login use-case asks of them; :class:`MemoryLoginBudget` keeps
them in this process (tests, one-off services), :class:`strata.meta.login_store.SqlLoginBudget`
in the database, shared by every worker of every node.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

__all__ = ["Limiter", "LoginBudget", "LoginLimits", "MemoryLoginBudget", "RateLimiter",
           "bucket_level", "check_parameters", "rate_limit_key", "seconds_until_token"]


class Limiter(Protocol):
    """What the login use-case needs of a rate limiter (this module's, or the shared one)."""

    def hit(self, key: str) -> bool: ...
    def retry_after(self, key: str) -> int: ...


@dataclass(frozen=True)
class LoginLimits:
    """Failed-login budgets: per client IP + user name, and per client IP."""

    per_user_burst: int = 10
    per_user_per_minute: float = 10.0
    per_ip_burst: int = 100
    per_ip_per_minute: float = 60.0

    def refill_seconds(self) -> float:
        """How long an empty bucket of either kind takes to fill up (a full one is no news)."""
        return max(self.per_user_burst * 60.0 / self.per_user_per_minute,
                   self.per_ip_burst * 60.0 / self.per_ip_per_minute)


class LoginBudget(Protocol):
    """The failed-login budgets of a server: *user_key* = :func:`rate_limit_key` of client IP
    and user name, *ip_key* = of the client IP alone."""

    async def retry_after(self, user_key: str, ip_key: str) -> int:
        """Whole seconds until a login of these keys may be tried (0 = now)."""
        ...

    async def failed(self, user_key: str, ip_key: str) -> None:
        """A login of these keys failed: spend one token from each bucket."""
        ...


def bucket_level(tokens: float, updated: float, now: float, rate: float, burst: float) -> float:
    """Tokens a bucket holds at *now*: *tokens* at *updated*, refilled at *rate* per second
    up to *burst* (a clock that went backwards refills nothing)."""
    return min(burst, tokens + max(0.0, now - updated) * rate)


def seconds_until_token(level: float, rate: float) -> int:
    """Whole seconds until a bucket at *level* holds one token (0 = now)."""
    return 0 if level >= 1.0 else max(1, math.ceil((1.0 - level) / rate))


def check_parameters(rate_per_minute: float, burst: int) -> None:
    if not rate_per_minute > 0:
        raise ValueError("rate_per_minute must be positive")
    if burst < 1:
        raise ValueError("burst must be at least 1")


def rate_limit_key(client_ip: str, username: str | None) -> str:
    """The limiter key for a login attempt: IP and username (``""`` when absent)."""
    return f"{client_ip}\n{username or ''}"


class _Bucket:
    __slots__ = ("tokens", "updated")

    def __init__(self, tokens: float, updated: float) -> None:
        self.tokens = tokens
        self.updated = updated


class RateLimiter:
    """Token bucket per key: *burst* requests at once, then *rate_per_minute* sustained."""

    def __init__(
        self,
        rate_per_minute: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        *,
        max_keys: int = 10_000,
    ) -> None:
        check_parameters(rate_per_minute, burst)
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self._rate = rate_per_minute / 60.0  # tokens per second
        self._burst = float(burst)
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._buckets)

    def _level(self, bucket: _Bucket, now: float) -> float:
        return bucket_level(bucket.tokens, bucket.updated, now, self._rate, self._burst)

    def _refill(self, bucket: _Bucket, now: float) -> None:
        bucket.tokens = self._level(bucket, now)
        bucket.updated = max(bucket.updated, now)

    def _is_idle(self, bucket: _Bucket, now: float) -> bool:
        return self._level(bucket, now) >= self._burst

    def _evict(self, now: float) -> None:
        # The front of the OrderedDict is the least recently used key.
        while self._buckets:
            key, bucket = next(iter(self._buckets.items()))
            if self._is_idle(bucket, now) or len(self._buckets) > self._max_keys:
                del self._buckets[key]
            else:
                break

    def hit(self, key: str) -> bool:
        """Spend one token for *key*: True = allowed, False = rate limited."""
        with self._lock:
            now = self._clock()
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = _Bucket(self._burst, now)
                self._buckets[key] = bucket
            else:
                self._refill(bucket, now)
                self._buckets.move_to_end(key)
            allowed = bucket.tokens >= 1.0
            if allowed:
                bucket.tokens -= 1.0
            self._evict(now)
            return allowed

    def retry_after(self, key: str) -> int:
        """Whole seconds until *key* may hit again (0 = now); for a ``Retry-After`` header."""
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                return 0
            return seconds_until_token(self._level(bucket, self._clock()), self._rate)


class MemoryLoginBudget:
    """The budgets in this process's memory (one worker's own)."""

    def __init__(self, limits: LoginLimits,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._per_user = RateLimiter(limits.per_user_per_minute, limits.per_user_burst, clock)
        self._per_ip = RateLimiter(limits.per_ip_per_minute, limits.per_ip_burst, clock)

    async def retry_after(self, user_key: str, ip_key: str) -> int:
        return max(self._per_user.retry_after(user_key), self._per_ip.retry_after(ip_key))

    async def failed(self, user_key: str, ip_key: str) -> None:
        self._per_user.hit(user_key)
        self._per_ip.hit(ip_key)
