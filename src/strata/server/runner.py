"""``strata serve``: migrate once, then run one or several worker processes on one port.

Workers share the listening port with SO_REUSEPORT and all state through the data dir and the
database, so any worker can serve any request (an upload may move between them).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import importlib
import logging
import multiprocessing
import os
import signal
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from aiohttp import web

from strata.compose import build_registry, build_store, metadata_database, prepare
from strata.config import ServerSettings
from strata.meta.build_store import BuildStore
from strata.meta.database import Database
from strata.release.webhooks import WebhookSecurity
from strata.review.checks import SourceChecks
from strata.server import malloc
from strata.server.api import release_api_from_env
from strata.server.app import create_app
from strata.server.auth_setup import (
    build_auth,
    prepare_auth,
    prepare_webhook_key,
    secret_box,
    signing_passphrase,
    tls_context,
)
from strata.server.builds import build_service, embedded_worker_id
from strata.server.metrics import Metrics, prepare_multiprocess_dir
from strata.server.urls import PublicUrl
from strata.storage.private import owner_only_umask, tighten

log = logging.getLogger("strata.server")
# Modules each worker imports while it builds its app (lazily imported elsewhere, to keep the
# CLI quick): imported before the fork, their memory is shared instead of copied per worker.
SHARED_IMPORTS = ("prometheus_client", "strata.server.pages.handlers")


def requeue_builds(settings: ServerSettings) -> None:
    """Build jobs this server was running when it stopped (a crash, kill -9) go back in the
    queue (or fail once their attempts are used up)."""
    db = metadata_database(settings)
    try:
        again = BuildStore(db).requeue_interrupted_sync(worker=embedded_worker_id(settings))
    finally:
        db.close()
    if again:
        print(f"strata: build job(s) {', '.join(map(str, again))} were interrupted; queued "
              "again", file=sys.stderr, flush=True)


def public_url(settings: ServerSettings) -> PublicUrl:
    """``--public-url``, or the listen address (``https`` with TLS)."""
    if settings.public_url:
        return PublicUrl.parse(settings.public_url)
    return PublicUrl.for_address(settings.listen.host, settings.listen.port,
                                 tls=settings.tls_cert is not None)


# What strata keeps in a data dir (anything else there is left alone by tighten_data_dir).
DATA_ENTRIES = ("strata.db", "strata.db-wal", "strata.db-shm", "strata.db-journal",
                "strata.db.writelock", "gc.lock", "uploads", "blobs", "auth", "metrics", "spool",
                "work", "builds.lock")


def tighten_data_dir(settings: ServerSettings) -> None:
    """A data dir left open to other users (an older strata, a copy, a hand-made dir) is made
    owner-only — the dir and what strata keeps in it — saying so on stderr: one line per kind
    of fix."""
    for line in tighten(settings.data_dir, DATA_ENTRIES).messages(settings.data_dir):
        print(f"strata: {line}", file=sys.stderr, flush=True)


def worker_app(settings: ServerSettings) -> web.Application:
    """The application one worker process serves (the data dir prepared by :func:`serve`):
    every route ``strata serve`` has, ``tests/api_v1/test_openapi.py`` builds it too."""
    return _worker_app(settings)[0]


def _worker_app(settings: ServerSettings) -> tuple[web.Application, Database]:
    db = metadata_database(settings)
    store = build_store(settings)
    registry = build_registry(settings, db, store)
    url = public_url(settings)
    security = WebhookSecurity(secret_box(settings),
                               allow_private=settings.webhook_allow_private)
    release = release_api_from_env(db, registry, default_host=url.netloc,
                                   webhook_security=security,
                                   source_allow=settings.source_allow,
                                   signing=signing_passphrase(settings),
                                   checker=SourceChecks(
                                       str(url), work_dir=settings.data_dir / "work" / "reviews",
                                       cache_dir=settings.data_dir / "work" / "review-cache"))
    builds = build_service(settings, db, auth := build_auth(settings, db), str(url))
    app = create_app(registry, release=release, builds=builds,
                     housekeeping_interval=settings.housekeeping_interval,
                     gc_interval=settings.gc_interval, lock_dir=settings.data_dir,
                     data_dir=settings.data_dir,
                     metrics=Metrics.create(), access_log=settings.access_log,
                     auth=auth, public_url=url)

    async def close(_app: web.Application) -> None:
        await store.close()
        db.close()

    app.on_cleanup.append(close)
    return app, db


def forkable_app(settings: ServerSettings) -> web.Application:
    """The application every forked worker serves, built once before the fork (issue #18:
    peak PSS). Building it in each worker wrote ~15 MiB of pages per worker (its objects, the
    freed heap they reuse, the argon2 dummy hash), copies of memory the workers share
    otherwise. Nothing of it is bound to a process yet: the stores open their database
    connections, threads, executors and client sessions on first use, which is in a worker,
    and its background tasks start with the worker's event loop (``on_startup``,
    ``cleanup_ctx``). The reads the build made (the signing keys) went through the engine's
    pool; :meth:`Database.close` stops its writer thread and closes those connections, so no
    worker inherits one (both restart on first use)."""
    app, db = _worker_app(settings)
    db.close()
    return app


def run_worker(settings: ServerSettings, app: web.Application | None = None) -> None:
    """Serve *app* (built before the fork by :func:`forkable_app`), or one built here."""
    malloc.limit_arenas()
    if app is None:
        app = worker_app(settings)
    app.cleanup_ctx.append(malloc.trimmer)
    web.run_app(app, host=settings.listen.host, port=settings.listen.port,
                reuse_port=settings.workers > 1, access_log=None, print=None,
                ssl_context=tls_context(settings),
                handle_signals=True, shutdown_timeout=5,
                # aiohttp closes a connection whose handler waits this long for a complete
                # request: idle keep-alive connections and clients trickling their headers.
                keepalive_timeout=settings.idle_timeout)


def prepare_elsewhere(settings: ServerSettings) -> None:
    """:func:`strata.compose.prepare` (umask, data dir, schema) with the migration run in a
    forked child: alembic and mako (~12 MiB, imported by the first migration or schema check)
    then never enter the serving processes (issue #18: peak PSS). An error is raised here as
    the child raised it."""
    owner_only_umask()
    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        pool.submit(prepare, settings).result()


def serve(settings: ServerSettings) -> None:
    malloc.limit_arenas()  # before any thread allocates: an arena made now lives on in workers
    tighten_data_dir(settings)
    prepare_elsewhere(settings)
    requeue_builds(settings)
    prepare_webhook_key(settings)
    prepare_auth(settings)
    # before the workers start (a generated passphrase is made once); its source, never it
    print(f"strata: release keys sealed with the signing passphrase from "
          f"{signing_passphrase(settings).source}", file=sys.stderr, flush=True)
    prepare_multiprocess_dir(str(settings.data_dir / "metrics"))
    scheme = "https" if settings.tls_cert else "http"
    url = public_url(settings)
    print(f"strata: serving {settings.data_dir} on {scheme}://{settings.listen} "
          f"with {settings.workers} worker(s); public URL {url}", file=sys.stderr, flush=True)
    if url.is_wildcard:
        print(f"strata: warning: the public URL {url} is not an address clients can use "
              "(token realm); pass --public-url", file=sys.stderr, flush=True)
    if settings.workers <= 1:
        run_worker(settings)
        return
    ctx = multiprocessing.get_context("fork")
    for name in SHARED_IMPORTS:  # imported by every worker anyway: shared if imported here
        importlib.import_module(name)
    app = forkable_app(settings)
    # Everything imported so far is shared with the forked workers copy-on-write; a worker's
    # cyclic GC writes into every tracked object's header and so copies each page it visits.
    # Frozen objects are never visited (peak PSS during the pull storm, bench/storm.py).
    gc.collect()
    gc.freeze()
    init = os.getpid() == 1  # a container's init must reap orphans: a supervisor does
    procs = [ctx.Process(target=_forked_worker, args=(settings, app, os.getpid()),
                         daemon=False)
             for _ in range(settings.workers - (0 if init else 1))]
    for p in procs:
        p.start()
    if init:
        supervise([p.pid for p in procs if p.pid is not None])
    serve_beside(settings, app, procs)


def _forked_worker(settings: ServerSettings, app: web.Application, parent: int) -> None:
    """A worker forked by :func:`serve`: it ends with its parent, even one killed with
    SIGKILL, which has no chance to stop it (PR_SET_PDEATHSIG)."""
    _die_with_parent(parent)
    run_worker(settings, app)


_PR_SET_PDEATHSIG = 1
SUPERVISOR = Path(__file__).with_name("supervise.py")


def supervise(pids: list[int]) -> None:
    """As PID 1: become :mod:`strata.server.supervise` (``execv``: this process's imported
    memory is released; the workers stay its children), which forwards SIGTERM/SIGINT to
    ``pids``, reaps every child and waits for them. Never returns."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-I", "-S", str(SUPERVISOR),
                              *map(str, pids)])


def _die_with_parent(parent: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        log.warning("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
    if os.getppid() != parent:  # the parent died before the prctl: no signal will come
        os.kill(os.getpid(), signal.SIGTERM)


def serve_beside(settings: ServerSettings, app: web.Application,
                 procs: Sequence[multiprocessing.process.BaseProcess]) -> None:
    """The parent serves *app* too, as the first worker (issue #18: peak PSS; a separate
    supervising process held a few MiB of its own), and supervises the others it forked:
    when it stops (SIGTERM, SIGINT) it sends them SIGTERM at once, so all drain their
    connections together, and returns once they have all ended."""

    def stop_workers() -> None:
        for p in procs:
            if p.pid is not None and p.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGTERM)

    async def on_shutdown(_app: web.Application) -> None:
        stop_workers()

    # Added after the fork: the forked workers' copies of the app do not have it.
    app.on_shutdown.insert(0, on_shutdown)
    malloc.drop_clean_file_pages()
    try:
        run_worker(settings, app)
    finally:
        stop_workers()  # run_worker also returns on an error; never leave a worker behind
        for p in procs:
            p.join()
