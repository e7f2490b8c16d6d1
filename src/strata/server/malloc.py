"""glibc malloc settings of a serving worker (issue #18: peak PSS; ``bench/memory.py``).

* At most :data:`ARENAS` malloc arena (the main one): glibc gives each thread that allocates
  concurrently its own arena (up to 8 per core), and every arena keeps the memory it freed for
  itself, so freed memory of one thread's arena is never reused by another's allocations. A
  worker's threads (the default executor's, the database writer running SQLite and garbage
  collection) allocate little, and mostly while the event loop waits for them. Set by
  ``strata serve`` before anything starts a thread: an arena made before the limit lives on
  in every forked worker (the 10-minute soak showed two thread arenas beside the main one,
  each growing). With one arena the soak's glibc heap grew 20 -> 26-27 MiB per worker in 6
  minutes instead of 20 -> 30-34 (``bench/soak.py --probe``, issue #18).
* :func:`trim` hands freed heap pages back to the kernel (``malloc_trim``: the top of each
  arena and whole free pages inside it): once the worker has started (the app built, the
  argon2 dummy hash computed) and then every :data:`TRIM_INTERVAL` seconds.

Both are no-ops where the C library is not glibc.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
from collections.abc import AsyncIterator

from aiohttp import web

ARENAS = 1
TRIM_INTERVAL = 30.0
_M_ARENA_MAX = -8


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    if not hasattr(libc, "malloc_trim") or not hasattr(libc, "mallopt"):
        return None
    return libc


_LIBC = _libc()


def limit_arenas(arenas: int = ARENAS) -> None:
    if _LIBC is not None:
        _LIBC.mallopt(_M_ARENA_MAX, arenas)


def trim() -> None:
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


async def trimmer(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx``: one trim once the worker serves, then one every interval."""

    async def loop() -> None:
        while True:
            trim()
            await asyncio.sleep(TRIM_INTERVAL)

    task = asyncio.create_task(loop())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
