"""Token-bucket rate limiting with a fake clock."""

from __future__ import annotations

import pytest

from strata.auth.ratelimit import RateLimiter, rate_limit_key
from support.clock import SettableClock as FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_burst_then_limited(clock: FakeClock) -> None:
    limiter = RateLimiter(rate_per_minute=6, burst=3, clock=clock)
    assert [limiter.hit("k") for _ in range(5)] == [True, True, True, False, False]
    assert limiter.retry_after("k") == 10  # 6/min = one token every 10 s


def test_refill_over_time(clock: FakeClock) -> None:
    limiter = RateLimiter(rate_per_minute=6, burst=3, clock=clock)
    for _ in range(3):
        assert limiter.hit("k")
    assert not limiter.hit("k")
    clock.advance(4)
    assert not limiter.hit("k")
    assert limiter.retry_after("k") == 6
    clock.advance(6)
    assert limiter.retry_after("k") == 0
    assert limiter.hit("k")
    assert not limiter.hit("k")
    clock.advance(3600)  # refills to burst, never beyond
    assert [limiter.hit("k") for _ in range(4)] == [True, True, True, False]


def test_sustained_rate(clock: FakeClock) -> None:
    limiter = RateLimiter(rate_per_minute=60, burst=1, clock=clock)
    allowed = 0
    for _ in range(240):  # 60 seconds in 0.25 s steps (exact in binary floating point)
        allowed += limiter.hit("k")
        clock.advance(0.25)
    assert allowed == 60


def test_limited_attempts_do_not_consume(clock: FakeClock) -> None:
    limiter = RateLimiter(rate_per_minute=6, burst=1, clock=clock)
    assert limiter.hit("k")
    for _ in range(100):
        assert not limiter.hit("k")
    clock.advance(10)
    assert limiter.hit("k")


def test_keys_are_independent(clock: FakeClock) -> None:
    limiter = RateLimiter(rate_per_minute=1, burst=1, clock=clock)
    a = rate_limit_key("10.0.0.1", "alice")
    b = rate_limit_key("10.0.0.1", "bob")
    c = rate_limit_key("10.0.0.2", "alice")
    assert limiter.hit(a)
    assert not limiter.hit(a)
    assert limiter.hit(b)
    assert limiter.hit(c)
    assert limiter.retry_after(rate_limit_key("10.0.0.3", None)) == 0


def test_rate_limit_key_is_unambiguous() -> None:
    assert rate_limit_key("1.2.3.4", None) == rate_limit_key("1.2.3.4", "")
    assert rate_limit_key("1.2.3.4", "a") != rate_limit_key("1.2.3.4a", "")
    assert rate_limit_key("::1", "x") != rate_limit_key("::1x", "")


def test_idle_keys_are_evicted(clock: FakeClock) -> None:
    limiter = RateLimiter(rate_per_minute=60, burst=2, clock=clock)
    for i in range(100):
        limiter.hit(f"k{i}")
    assert len(limiter) == 100
    clock.advance(2)  # every bucket is full again
    limiter.hit("fresh")
    assert len(limiter) == 1


def test_memory_is_bounded_under_key_spraying(clock: FakeClock) -> None:
    limiter = RateLimiter(rate_per_minute=1, burst=5, clock=clock, max_keys=50)
    for i in range(10_000):
        limiter.hit(f"spray{i}")
        assert len(limiter) <= 50
    # The most recent keys keep their state.
    for _ in range(4):
        assert limiter.hit("spray9999")
    assert not limiter.hit("spray9999")


def test_active_keys_survive_while_others_are_evicted(clock: FakeClock) -> None:
    limiter = RateLimiter(rate_per_minute=1, burst=1, clock=clock, max_keys=10)
    assert limiter.hit("victim")
    for i in range(5):
        limiter.hit(f"other{i}")
    assert not limiter.hit("victim")  # still tracked: within max_keys


def test_clock_going_backwards_is_harmless(clock: FakeClock) -> None:
    limiter = RateLimiter(rate_per_minute=6, burst=1, clock=clock)
    assert limiter.hit("k")
    clock.advance(-1000)
    assert not limiter.hit("k")
    assert limiter.retry_after("k") >= 1
    clock.advance(1000 + 10)
    assert limiter.hit("k")


def test_retry_after_is_at_least_one_second_when_limited(clock: FakeClock) -> None:
    limiter = RateLimiter(rate_per_minute=600, burst=1, clock=clock)
    assert limiter.hit("k")
    assert not limiter.hit("k")
    assert limiter.retry_after("k") == 1


@pytest.mark.parametrize(
    ("rate", "burst", "max_keys"), [(0, 1, 10), (-1, 1, 10), (1, 0, 10), (1, 1, 0)]
)
def test_invalid_parameters(rate: float, burst: int, max_keys: int) -> None:
    with pytest.raises(ValueError):
        RateLimiter(rate, burst, max_keys=max_keys)


def test_default_clock_works() -> None:
    limiter = RateLimiter(rate_per_minute=60, burst=1)
    assert limiter.hit("k")
    assert not limiter.hit("k")
