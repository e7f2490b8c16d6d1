"""``strata serve``: migrate once, then run one or several worker processes on one port.

Workers share the listening port with SO_REUSEPORT and all state through the data dir and the
database, so any worker can serve any request (an upload may move between them).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
from types import FrameType

from aiohttp import web

from strata.config import ServerSettings
from strata.meta.engine import create_engine, migrate, sqlite_url
from strata.meta.gc_store import SqlGarbageStore
from strata.meta.store import SqlMetaStore
from strata.registry.service import Registry
from strata.server.app import create_app
from strata.storage.filesystem import FilesystemBlobStore

log = logging.getLogger("strata.server")


def build_registry(settings: ServerSettings) -> Registry:
    engine = create_engine(settings.database_url or sqlite_url(settings.data_dir))
    meta = SqlMetaStore(engine)
    store = FilesystemBlobStore(settings.data_dir)
    return Registry.build(meta, store, limits=settings.limits,
                          garbage=SqlGarbageStore(engine), gc_grace_seconds=settings.gc_grace)


def prepare(settings: ServerSettings) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine(settings.database_url or sqlite_url(settings.data_dir))
    migrate(engine)
    engine.dispose()


def run_worker(settings: ServerSettings) -> None:
    app = create_app(build_registry(settings),
                     housekeeping_interval=settings.housekeeping_interval,
                     gc_interval=settings.gc_interval, lock_dir=settings.data_dir)
    web.run_app(app, host=settings.listen.host, port=settings.listen.port,
                reuse_port=settings.workers > 1, access_log=None, print=None,
                handle_signals=True, shutdown_timeout=5)


def serve(settings: ServerSettings) -> None:
    prepare(settings)
    print(f"strata: serving {settings.data_dir} on http://{settings.listen} "
          f"with {settings.workers} worker(s)", file=sys.stderr, flush=True)
    if settings.workers <= 1:
        run_worker(settings)
        return
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=run_worker, args=(settings,), daemon=False)
             for _ in range(settings.workers)]
    for p in procs:
        p.start()

    def stop(signum: int, _frame: FrameType | None) -> None:
        for p in procs:
            if p.pid is not None and p.is_alive():
                os.kill(p.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for p in procs:
        p.join()
