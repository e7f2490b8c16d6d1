"""Login rate limits shared by worker processes (a mapped file)."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from strata.auth.shared_ratelimit import SLOTS, SharedRateLimiter
from support.clock import SettableClock as Clock


def test_a_bucket_refills_and_says_when(tmp_path: Path) -> None:
    clock = Clock()
    limiter = SharedRateLimiter(tmp_path / "l", rate_per_minute=6, burst=3, clock=clock)
    assert [limiter.hit("k") for _ in range(4)] == [True, True, True, False]
    assert limiter.retry_after("k") == 10  # one token per 10 s
    assert limiter.retry_after("other") == 0
    clock.now += 10
    assert limiter.retry_after("k") == 0
    assert limiter.hit("k") and not limiter.hit("k")
    clock.now += 30
    assert [limiter.hit("k") for _ in range(4)] == [True, True, True, False]


def test_two_limiters_on_one_file_share_the_budget(tmp_path: Path) -> None:
    clock = Clock()
    one = SharedRateLimiter(tmp_path / "l", rate_per_minute=1, burst=4, clock=clock)
    two = SharedRateLimiter(tmp_path / "l", rate_per_minute=1, burst=4, clock=clock)
    assert [one.hit("k"), two.hit("k"), one.hit("k"), two.hit("k")] == [True] * 4
    assert not one.hit("k") and not two.hit("k")
    assert one.retry_after("k") == two.retry_after("k") > 0


def test_reset_forgets_everything(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "l"
    limiter = SharedRateLimiter(path, rate_per_minute=1, burst=1, clock=clock)
    assert limiter.hit("k") and not limiter.hit("k")
    limiter.close()
    SharedRateLimiter.reset(path)
    assert (path.stat().st_mode & 0o777) == 0o600
    assert SharedRateLimiter(path, rate_per_minute=1, burst=1, clock=clock).hit("k")


def test_a_key_flood_keeps_the_table_bounded_and_working(tmp_path: Path) -> None:
    clock = Clock()
    limiter = SharedRateLimiter(tmp_path / "l", rate_per_minute=1, burst=2, clock=clock)
    size = (tmp_path / "l").stat().st_size
    for i in range(3 * SLOTS):  # more keys than slots, each spending a token
        clock.now += 0.0001
        assert limiter.hit(f"spray-{i}")
    assert (tmp_path / "l").stat().st_size == size
    # The newest keys (never the oldest of their run) still have their spent token.
    assert limiter.hit("spray-12287") and not limiter.hit("spray-12287")
    assert limiter.hit("fresh") and limiter.hit("fresh") and not limiter.hit("fresh")


def _hammer(path: str, n: int, out: multiprocessing.Queue[int]) -> None:
    limiter = SharedRateLimiter(Path(path), rate_per_minute=0.001, burst=50)
    out.put(sum(limiter.hit("target") for _ in range(n)))


def test_processes_never_exceed_the_burst_together(tmp_path: Path) -> None:
    path = tmp_path / "l"
    SharedRateLimiter.reset(path)
    ctx = multiprocessing.get_context("fork")
    out: multiprocessing.Queue[int] = ctx.Queue()
    procs = [ctx.Process(target=_hammer, args=(str(path), 100, out)) for _ in range(4)]
    for p in procs:
        p.start()
    allowed = sum(out.get(timeout=30) for _ in procs)
    for p in procs:
        p.join(timeout=30)
    assert allowed == 50  # 400 attempts from 4 processes, one budget of 50


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (1, 0)])
def test_invalid_parameters(tmp_path: Path, rate: float, burst: int) -> None:
    with pytest.raises(ValueError):
        SharedRateLimiter(tmp_path / "l", rate_per_minute=rate, burst=burst)
