"""``/metrics`` (Prometheus text format) and structured request logs.

Several worker processes serve one port, so counters use prometheus_client's multiprocess mode:
each process writes its values to files in ``PROMETHEUS_MULTIPROC_DIR`` (``DATA/metrics``, set by
the runner before any worker starts) and a scrape of any worker adds them all up. The library
reads that variable when it is first imported, so it is imported here lazily, never at module
level.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.typedefs import Handler

from strata.server.keys import ROUTE
from strata.storage.private import private_dir

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

log = logging.getLogger("strata.access")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


@dataclass
class Metrics:
    registry: CollectorRegistry
    requests: Counter
    duration: Histogram
    bytes_in: Counter
    bytes_out: Counter
    uploads: Gauge
    gc_runs: Counter
    gc_bytes: Counter
    multiprocess: bool

    @classmethod
    def create(cls) -> Metrics:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        registry = CollectorRegistry()
        own = None if multiprocess else registry
        return cls(
            registry=registry,
            requests=Counter("strata_http_requests", "HTTP requests by route, method and status",
                             ["route", "method", "status"], registry=own),
            duration=Histogram("strata_http_request_duration_seconds",
                               "Time to answer, by route", ["route"], registry=own,
                               buckets=(0.001, 0.005, 0.02, 0.1, 0.5, 2.0, 10.0, 60.0)),
            bytes_in=Counter("strata_http_received_bytes", "Request body bytes received",
                             ["route"], registry=own),
            bytes_out=Counter("strata_http_sent_bytes", "Response body bytes sent",
                              ["route"], registry=own),
            uploads=Gauge("strata_upload_requests_in_flight",
                          "Blob upload requests being received now", registry=own,
                          multiprocess_mode="livesum"),
            gc_runs=Counter("strata_gc_runs", "Garbage collection runs", ["result"],
                            registry=own),
            gc_bytes=Counter("strata_gc_removed_bytes", "Bytes removed by garbage collection",
                             registry=own),
            multiprocess=multiprocess,
        )

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        if self.multiprocess:
            from prometheus_client import CollectorRegistry, multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)


METRICS = web.AppKey("metrics", Metrics)
ACCESS_LOG = web.AppKey("access_log", bool)


def prepare_multiprocess_dir(path: str) -> None:
    """Empty the metrics directory and point prometheus_client at it (before workers fork)."""
    private_dir(Path(path))
    for name in os.listdir(path):
        if name.endswith(".db"):
            os.unlink(os.path.join(path, name))
    os.environ[MULTIPROC_ENV] = path


def mark_process_dead(pid: int) -> None:
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    response = await handler(request)
    elapsed = time.perf_counter() - started
    app = request.app
    metrics = app.get(METRICS)
    route = request.get(ROUTE, "other")
    sent = response.content_length or 0
    received = request.content_length or 0
    if metrics is not None:
        metrics.requests.labels(route, request.method, str(response.status)).inc()
        metrics.duration.labels(route).observe(elapsed)
        if received:
            metrics.bytes_in.labels(route).inc(received)
        if sent and request.method != "HEAD":
            metrics.bytes_out.labels(route).inc(sent)
    if app.get(ACCESS_LOG):
        entry: dict[str, Any] = {
            "ts": round(time.time(), 3), "pid": os.getpid(), "remote": request.remote,
            "method": request.method,
            "path": request.path, "route": route, "status": response.status,
            "in": received, "out": sent, "ms": round(elapsed * 1000, 2),
            "ua": request.headers.get("User-Agent", ""),
        }
        sys.stderr.write(json.dumps(entry) + "\n")
    return response


async def metrics_handler(request: web.Request) -> web.StreamResponse:
    body = request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4"})
