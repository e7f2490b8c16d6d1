"""Periodic work inside ``strata serve``: expiring upload sessions, garbage collection.

With several worker processes only one collects at a time: each run takes an exclusive,
non-blocking ``flock`` on ``DATA/gc.lock`` and skips its turn when another worker holds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

from aiohttp import web

log = logging.getLogger("strata.server")

CleanupCtx = Callable[[web.Application], contextlib.AbstractAsyncContextManager[None]]


def periodic(name: str, interval: float, job: Callable[[], Awaitable[None]]) -> CleanupCtx:
    """A cleanup context running ``job`` every ``interval`` seconds while the app runs."""

    @contextlib.asynccontextmanager
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        async def loop() -> None:
            while True:
                await asyncio.sleep(interval)
                try:
                    await job()
                except Exception:
                    log.exception("%s failed", name)

        task = asyncio.create_task(loop(), name=name)
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return ctx


@contextlib.contextmanager
def try_lock(path: Path) -> Iterator[bool]:
    """Yield True while holding an exclusive lock on ``path``, False if another holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
