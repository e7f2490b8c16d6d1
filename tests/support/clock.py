"""A clock tests set by hand: pass it where the code takes ``clock: Callable[[], float]``."""

from __future__ import annotations


class SettableClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float = 0.0, *, days: float = 0.0) -> float:
        self.now += days * 86400 + seconds
        return self.now
