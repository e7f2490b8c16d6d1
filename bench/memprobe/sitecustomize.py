"""Bench-only memory probe for ``strata serve`` workers (``bench/soak.py --probe DIR``).

Loaded by the interpreter at start (this directory is put first on ``PYTHONPATH`` of the
server the bench starts; the product has no hook). In every process forked from that
interpreter (the workers; also the migration child, which ends at once) it starts
``tracemalloc`` right after the fork, so only what the worker allocates itself is traced, and
a thread that every ``$STRATA_MEMPROBE_INTERVAL`` seconds (default 60) writes into
``$STRATA_MEMPROBE_DIR``:

* ``<pid>-<n>.snap``: a ``tracemalloc`` snapshot (``Snapshot.load``), frames as configured by
  ``$STRATA_MEMPROBE_FRAMES`` (default 12; 0: no tracing, the other figures only);
* ``<pid>-<n>.json``: live objects per type (``gc.get_objects()``, frozen objects excluded),
  ``tracemalloc``'s traced size, the process's ``smaps_rollup`` figures, glibc's heap
  (``mallinfo2``: bytes in use and free in its arenas), SQLite's own allocations
  (``sqlite3_memory_used``: page caches, schemas, prepared statements) and pymalloc's arenas
  (``sys._debugmallocstats``).

``bench/memprobe/diff.py`` compares two of them. Tracing slows a worker (about 2x) and adds
its own memory: read the differences, not the totals.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import json
import os
import sys
import tempfile
import threading
import time
import tracemalloc
from collections import Counter

_DIR = os.environ.get("STRATA_MEMPROBE_DIR")


def _rollup() -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        with open("/proc/self/smaps_rollup") as f:
            for line in f:
                key, _, value = line.partition(":")
                if value.strip().endswith("kB"):
                    out[key] = int(value.split()[0])
    except OSError:
        pass
    return out


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def _native() -> dict[str, int]:
    """glibc's heap (``mallinfo2``: in use vs free in its arenas, mmapped chunks) and SQLite's
    own allocations (``sqlite3_memory_used``: page caches, schemas, statements)."""
    out: dict[str, int] = {}
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        libc.mallinfo2.restype = _MallInfo2
        info = libc.mallinfo2()
        out.update({f"malloc_{name}": getattr(info, name) for name, _ in _MallInfo2._fields_})
    with contextlib.suppress(OSError, AttributeError):
        sqlite = ctypes.CDLL("libsqlite3.so.0")
        sqlite.sqlite3_memory_used.restype = ctypes.c_int64
        sqlite.sqlite3_memory_highwater.restype = ctypes.c_int64
        out["sqlite_memory_used"] = sqlite.sqlite3_memory_used()
        out["sqlite_memory_highwater"] = sqlite.sqlite3_memory_highwater(0)
    return out


def _pymalloc() -> dict[str, int]:
    """``sys._debugmallocstats`` (written to fd 2: caught in a temporary file)."""
    out: dict[str, int] = {}
    with tempfile.TemporaryFile("w+") as tmp:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(tmp.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        for line in tmp:
            for key in ("# arenas allocated current", "# bytes in allocated blocks",
                        "# bytes in available blocks", "Total"):
                if line.startswith(key):
                    out.setdefault("pymalloc " + key.lstrip("# "), int(
                        line.rsplit("=", 1)[-1].replace(",", "").strip()))
    return out


def _dump(directory: str, n: int) -> None:
    pid = os.getpid()
    if tracemalloc.is_tracing():
        snap = tracemalloc.take_snapshot()
        snap.dump(os.path.join(directory, f"{pid}-{n:03d}.snap"))
    types = Counter(type(o).__qualname__ for o in gc.get_objects())
    current, peak = tracemalloc.get_traced_memory()
    info = {"pid": pid, "n": n, "time": time.time(), "traced": current, "traced_peak": peak,
            "tracemalloc_overhead": tracemalloc.get_tracemalloc_memory(),
            "gc_counts": gc.get_count(), "frozen": gc.get_freeze_count(),
            "types": dict(types.most_common(400)), "smaps_rollup": _rollup(),
            "native": _native(), "pymalloc": _pymalloc(),
            "interns": dict(_INTERNS.most_common(30))}
    with open(os.path.join(directory, f"{pid}-{n:03d}.json"), "w") as f:
        json.dump(info, f)


def _child() -> None:
    directory = _DIR
    assert directory is not None
    frames = int(os.environ.get("STRATA_MEMPROBE_FRAMES", "12"))
    if frames > 0:
        tracemalloc.start(frames)
    interval = float(os.environ.get("STRATA_MEMPROBE_INTERVAL", "60"))

    def run() -> None:
        n = 0
        while True:
            time.sleep(interval if n else min(interval, 15.0))
            try:
                _dump(directory, n)
            except Exception as exc:  # a bench probe: say so, keep serving
                with open(os.path.join(directory, f"{os.getpid()}-error.txt"), "a") as f:
                    f.write(f"{n}: {exc!r}\n")
            n += 1

    threading.Thread(target=run, name="memprobe", daemon=True).start()


def _no_pathlib_intern() -> None:
    """``$STRATA_MEMPROBE_NO_INTERN=1`` (an experiment, never the product): pathlib stops
    interning path components (each blob digest, each upload id), to tell whether the churn
    of the interned-strings table moves the workers' heap."""
    import pathlib
    import types

    shim = types.ModuleType("sys")
    shim.__dict__.update(sys.__dict__)
    shim.intern = lambda s: s  # type: ignore[attr-defined]
    pathlib.sys = shim  # type: ignore[attr-defined]


_INTERNS: Counter[str] = Counter()


def _record_interns() -> None:
    """``$STRATA_MEMPROBE_INTERNS=1``: count the Python callers of ``sys.intern`` (pathlib's
    frames skipped, four frames each) from the fork on; each dump's JSON lists the top 30
    under ``interns``. A string interned per request churns the interpreter's table (each is
    dropped again when freed), whose ~2 MiB array is then reallocated every few tens of
    thousands of them: how the fan-out directory of ``upload_place`` was found (session 10)."""
    real = sys.intern

    def counting(text: str) -> str:
        frame = sys._getframe(1)
        while frame is not None and frame.f_code.co_filename.endswith("pathlib.py"):
            frame = frame.f_back
        chain = []
        for _ in range(4):
            if frame is None:
                break
            chain.append(f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno}")
            frame = frame.f_back
        _INTERNS[" < ".join(chain)] += 1
        return real(text)

    sys.intern = counting


if _DIR:
    if os.environ.get("STRATA_MEMPROBE_NO_INTERN") == "1":
        _no_pathlib_intern()
    os.register_at_fork(after_in_child=_child)
    if os.environ.get("STRATA_MEMPROBE_INTERNS") == "1":
        os.register_at_fork(after_in_child=_record_interns)
