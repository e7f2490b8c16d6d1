#!/usr/bin/env python3
"""One repository's garbage-collection sweep on a big repository (issue #18), SQLite and
PostgreSQL.

A repository of ``--manifests`` image manifests (two layers each, from a pool of as many blobs,
a fifth of them referrers of an earlier manifest, 30% tagged, everything older than the
cutoff) is written straight into a migrated database; then ``meta.gc_store._sweep`` (what
``SqlGarbageStore.sweep_repository`` runs, here without its write) is timed, with the Python
memory it allocated on the way (``tracemalloc`` peak: the rows it fetched and the lists it
returns). PostgreSQL is a throwaway cluster in a temp dir (``tests/support/postgres.py``).

    .venv/bin/python bench/gc_sweep.py                       # 20,000 manifests, both backends
    .venv/bin/python bench/gc_sweep.py --manifests 100000 --backends postgres
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from strata.meta import gc_store  # noqa: E402
from strata.meta import schema as t  # noqa: E402
from strata.meta.connection import create_engine, migrate, sqlite_url  # noqa: E402
from support.postgres import PostgresCluster  # noqa: E402

REPO = "lib/big"


def digest(seed: str) -> str:
    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


def fill(engine: sa.Engine, n: int) -> None:
    rng = random.Random(1)
    blobs = [digest(f"b{i}") for i in range(n)]
    manifests: list[dict[str, object]] = []
    refs: list[dict[str, object]] = []
    tags: list[dict[str, object]] = []
    made: list[str] = []
    for i in range(n):
        m = digest(f"m{i}")
        subject = rng.choice(made) if made and rng.random() < 0.2 else None
        manifests.append({"repository_id": 1, "digest": m, "media_type": "x", "size": 1,
                          "content": b"x", "subject": subject, "created_at": 0.0})
        refs += [{"repository_id": 1, "parent": m, "child": b, "is_manifest": False}
                 for b in rng.sample(blobs, 2)]
        if rng.random() < 0.3:
            tags.append({"repository_id": 1, "name": f"t{i}", "digest": m, "updated_at": 0.0})
        made.append(m)
    with engine.begin() as conn:
        conn.execute(sa.insert(t.repositories).values(id=1, name=REPO, created_at=0.0))
        conn.execute(sa.insert(t.blobs), [{"digest": b, "size": 1, "created_at": 0.0}
                                          for b in blobs])
        conn.execute(sa.insert(t.repository_blobs), [
            {"repository_id": 1, "digest": b, "created_at": 0.0, "touched_at": 0.0}
            for b in blobs])
        conn.execute(sa.insert(t.manifests), manifests)
        conn.execute(sa.insert(t.manifest_references), refs)
        conn.execute(sa.insert(t.tags), tags)


def measure(engine: sa.Engine, label: str, n: int, rounds: int) -> None:
    times, peaks = [], []
    for _ in range(rounds):
        with engine.connect() as conn:
            tracemalloc.start()
            t0 = time.perf_counter()
            sweep = gc_store._sweep(conn, 1, REPO, 1e12)
            times.append(time.perf_counter() - t0)
            peaks.append(tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
    print(f"| {label} | {n:,} | {min(times) * 1000:.0f} | {max(peaks) / (1 << 20):.1f} "
          f"| {len(sweep.manifests):,} | {len(sweep.links):,} |", flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--manifests", type=int, default=20_000)
    p.add_argument("--backends", default="sqlite,postgres")
    p.add_argument("--rounds", type=int, default=3, help="timed sweeps (the best is printed)")
    args = p.parse_args()
    print("| backend | manifests | sweep (ms, best) | Python peak (MiB) | dead manifests "
          "| unused links |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for backend in args.backends.split(","):
        if backend == "sqlite":
            with tempfile.TemporaryDirectory(prefix="strata-gc-sweep-") as tmp:
                engine = create_engine(sqlite_url(Path(tmp)))
                migrate(engine)
                fill(engine, args.manifests)
                measure(engine, "SQLite", args.manifests, args.rounds)
                engine.dispose()
        elif backend == "postgres":
            with PostgresCluster() as pg:
                pg.create_database("gcsweep")
                engine = create_engine(pg.url("gcsweep"))
                migrate(engine)
                fill(engine, args.manifests)
                with engine.connect() as conn:
                    conn.exec_driver_sql("ANALYZE")
                measure(engine, "PostgreSQL", args.manifests, args.rounds)
                engine.dispose()
        else:
            raise SystemExit(f"gc_sweep: unknown backend {backend!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
