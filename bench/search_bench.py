"""Search latency through the HTTP API with a large catalog, on SQLite and on PostgreSQL
(issue 15: p99 under 50 ms with 10,000 images, 100,000 tags and 1,000,000 package rows).

For each database: a data dir (and, for PostgreSQL, a throwaway cluster from
``tests/support/postgres.py``), migrated, filled by :func:`catalog_data.populate`, then one
``strata serve --workers 1 --no-auth`` process; one client on one keep-alive connection asks,
one request at a time after a warm-up:

* ``text``: ``GET /api/v1/search?q=`` one or two vocabulary words (a fifth with a namespace
  or status filter, a tenth a second page by cursor);
* ``package``: ``GET /api/v1/search/packages?name=`` a common package (in every image), a
  rare one, or ``NAME=VERSION``;
* ``page``: ``GET /<ns>/<name>`` (the image page) when the server has it (a 404 on the first
  image: skipped and said so);
* ``healthz``: ``GET /healthz`` (one metadata read), the floor of a request on this machine.

Prints p50, p99 and max per kind and database, and ``--json FILE`` writes them. Short runs by
default (``--queries 300``) on a shared machine.

    .venv/bin/python bench/search_bench.py [--images 10000] [--packages 1000000]
        [--databases sqlite,postgres] [--queries 300] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from catalog_data import COMMON_PACKAGES, Catalog, populate  # noqa: E402

from strata.meta.connection import sqlite_url  # noqa: E402
from strata.meta.database import Database  # noqa: E402
from support.postgres import PostgresCluster  # noqa: E402
from support.server import StrataServer  # noqa: E402

Query = Callable[[random.Random], str]


def text_query(catalog: Catalog) -> Query:
    def make(rng: random.Random) -> str:
        words = rng.sample(catalog.words, rng.choice((1, 1, 2)))
        params = f"q={'+'.join(words)}"
        roll = rng.random()
        if roll < 0.1:
            params += "&namespace=ns00"
        elif roll < 0.2:
            params += "&status=active&n=50"
        return f"/api/v1/search?{params}"
    return make


def package_query(catalog: Catalog) -> Query:
    rare = catalog.packages[len(COMMON_PACKAGES):]

    def make(rng: random.Random) -> str:
        roll = rng.random()
        if roll < 0.4:
            return f"/api/v1/search/packages?name={rng.choice(COMMON_PACKAGES)}"
        if roll < 0.8:
            return f"/api/v1/search/packages?name={rng.choice(rare)}"
        return f"/api/v1/search/packages?name={rng.choice(COMMON_PACKAGES)}=1.2.3"
    return make


def page_query(catalog: Catalog) -> Query:
    return lambda rng: "/" + rng.choice(catalog.repositories)


async def measure(base: str, make: Query, count: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    times: list[float] = []
    statuses: dict[int, int] = {}
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=connector) as session:
        for n in range(count + 20):
            path = make(rng)
            started = time.perf_counter()
            async with session.get(base + path) as resp:
                body = await resp.read()
                if resp.status == 200 and "cursor" not in path and rng.random() < 0.1 and \
                        path.startswith("/api/v1/search?"):
                    cursor = json.loads(body).get("next")
                    if cursor:
                        async with session.get(base + path + f"&cursor={cursor}") as more:
                            await more.read()
            elapsed = time.perf_counter() - started
            if n >= 20:  # warm-up
                times.append(elapsed * 1000)
                statuses[resp.status] = statuses.get(resp.status, 0) + 1
    times.sort()
    return {"count": len(times), "p50_ms": round(statistics.median(times), 2),
            "p99_ms": round(times[min(len(times) - 1, int(len(times) * 0.99))], 2),
            "max_ms": round(times[-1], 2), "statuses": statuses}


def run_one(kind: str, base: Path, args: argparse.Namespace) -> dict[str, Any]:
    cluster = None
    if kind == "postgres":
        cluster = PostgresCluster().start()
        url = cluster.create_database("bench")
    else:
        (base / "data").mkdir(parents=True)
        url = sqlite_url(base / "data")
    try:
        db = Database(url)
        db.migrate()
        started = time.monotonic()
        catalog = populate(db, images=args.images, packages=args.packages)
        filled = time.monotonic() - started
        db.close()
        print(f"{kind}: {catalog.rows} written in {filled:.0f} s", flush=True)
        extra = ["--workers", "1", "--no-auth", "--gc-interval", "0"]
        if cluster is not None:
            extra += ["--database-url", url]
        server = StrataServer(base, *extra, startup_timeout=120).start()
        try:
            out: dict[str, Any] = {"rows": catalog.rows, "fill_seconds": round(filled)}
            kinds = {"healthz": lambda _rng: "/healthz", "text": text_query(catalog),
                     "package": package_query(catalog), "page": page_query(catalog)}
            for name, make in kinds.items():
                if name == "page":
                    first = server.request("GET", "/" + catalog.repositories[0])
                    if first.status != 200:
                        out[name] = f"skipped: GET /<ns>/<name> answered {first.status}"
                        continue
                out[name] = asyncio.run(measure(server.url, make, args.queries, seed=3))
            return out
        finally:
            server.stop()
    finally:
        if cluster is not None:
            cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--packages", type=int, default=1_000_000)
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    results = {}
    for kind in args.databases.split(","):
        with tempfile.TemporaryDirectory(prefix=f"search-bench-{kind}-") as tmp:
            results[kind] = run_one(kind, Path(tmp), args)
            print(json.dumps({kind: results[kind]}, indent=2), flush=True)
    for kind, result in results.items():
        for name in ("healthz", "text", "package", "page"):
            value = result.get(name)
            if isinstance(value, dict):
                print(f"{kind:<9} {name:<8} p50 {value['p50_ms']:7.2f} ms  "
                      f"p99 {value['p99_ms']:7.2f} ms  max {value['max_ms']:7.2f} ms  "
                      f"{value['statuses']}")
            else:
                print(f"{kind:<9} {name:<8} {value}")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
