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


_MADV_DONTNEED = 4


def drop_clean_file_pages() -> int:
    """Unmap the pages of read-only file mappings (shared libraries' code and constants) that
    this process faulted in while it imported and built the app, once the workers are forked:
    with ``MADV_DONTNEED`` a private file mapping that holds no page of its own (``Anonymous:
    0 kB``) only loses its page-table entries; the pages stay in the page cache and are mapped
    again on first use. Without it the serving parent kept every page the imports touched
    (``_rust.abi3.so`` alone ~9 MiB), pages a forked worker maps only as it runs them. Returns
    the KiB dropped (0 where ``madvise`` is missing)."""
    if _LIBC is None:
        return 0
    madvise = _LIBC.madvise
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    dropped = 0
    for start, end, rss in _clean_file_mappings():
        if madvise(start, end - start, _MADV_DONTNEED) == 0:
            dropped += rss
    return dropped


def _clean_file_mappings() -> list[tuple[int, int, int]]:
    """(start, end, Rss KiB) of this process's read-only private file mappings with no
    anonymous (copied-on-write) page, from ``/proc/self/smaps``."""
    rows: list[tuple[int, int, int]] = []
    current: list[int] | None = None  # start, end, rss, anonymous
    try:
        with open("/proc/self/smaps", encoding="ascii", errors="replace") as smaps:
            lines = smaps.read().splitlines()
    except OSError:
        return rows

    def close() -> None:
        if current is not None and current[3] == 0 and current[2] > 0:
            rows.append((current[0], current[1], current[2]))

    for line in lines:
        head, _, rest = line.partition(" ")
        if "-" in head and not head.endswith(":"):
            close()
            parts = line.split(None, 5)
            perms = parts[1] if len(parts) > 1 else ""
            path = parts[5] if len(parts) > 5 else ""
            if path.startswith("/") and perms.endswith("p") and "w" not in perms:
                lo, hi = head.split("-")
                current = [int(lo, 16), int(hi, 16), 0, 0]
            else:
                current = None
        elif current is not None and head == "Rss:":
            current[2] = int(rest.split()[0])
        elif current is not None and head == "Anonymous:":
            current[3] = int(rest.split()[0])
    close()
    return rows
