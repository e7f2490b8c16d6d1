"""``create_app``: the only place where HTTP meets concrete stores and policies."""

from __future__ import annotations

import logging
from pathlib import Path

from aiohttp import web

from strata.catalog.views import Catalog
from strata.meta.browse_store import BrowseStore
from strata.meta.key_store import KeyStore
from strata.registry.service import Registry
from strata.server.api import ReleaseApi, add_release_api, browse
from strata.server.api.spec import declare
from strata.server.auth import TokenAuth
from strata.server.background import periodic, try_lock
from strata.server.blobfile import BlobSends
from strata.server.builds import BuildService, add_builds
from strata.server.errors import add_api_version, error_middleware
from strata.server.gate import UPLOAD_GATE, UploadGate
from strata.server.handlers.health import healthz
from strata.server.inputs import refuse_nul
from strata.server.keys import BLOB_SENDS, DATA_DIR, REGISTRY
from strata.server.metrics import ACCESS_LOG, METRICS, Metrics, metrics_handler, observe
from strata.server.pages import add_pages
from strata.server.rawbody import close_after_taken_body
from strata.server.routes import dispatch
from strata.server.urls import PUBLIC_URL, PublicUrl

log = logging.getLogger("strata.server")


def create_app(registry: Registry, *, housekeeping_interval: float = 600.0,
               gc_interval: float = 0.0, lock_dir: Path | None = None,
               client_max_size: int = 1 << 20, metrics: Metrics | None = None,
               access_log: bool = False, release: ReleaseApi | None = None,
               auth: TokenAuth | None = None,
               public_url: PublicUrl | None = None,
               builds: BuildService | None = None,
               data_dir: Path | None = None) -> web.Application:
    """*public_url*: where clients reach the server, the base of every absolute URL (the token
    realm); None: the address of the socket each request arrived on (never its ``Host``)."""
    app = web.Application(middlewares=[observe, error_middleware, refuse_nul],
                          client_max_size=client_max_size)
    if public_url is not None:
        app[PUBLIC_URL] = public_url
    app[REGISTRY] = registry
    app[BLOB_SENDS] = BlobSends()
    if data_dir is not None:
        app[DATA_DIR] = data_dir
    app[UPLOAD_GATE] = UploadGate(registry.limits.max_concurrent_uploads)
    app[ACCESS_LOG] = access_log
    if metrics is not None:
        app[METRICS] = metrics
        app.router.add_get("/metrics", metrics_handler)
    app.router.add_get("/healthz", healthz)
    app.router.add_route("*", "/v2", dispatch_base)
    app.router.add_route("*", "/v2/{tail:.*}", dispatch)
    app.on_response_prepare.append(add_api_version)
    app.on_response_prepare.append(close_after_taken_body)

    async def stop_decoder(_app: web.Application) -> None:
        registry.manifests.close()
    app.on_cleanup.append(stop_decoder)
    if auth is not None:  # None: an open registry (the in-process api tests)
        auth.install(app)
    if release is not None:
        add_release_api(app, release)
        db = release.engine.store.db
        add_pages(app, Catalog(release.engine, registry, BrowseStore(db), KeyStore(db)))
        declare(app, browse.OPERATIONS)
    if builds is not None:  # /api/v1/builds and the embedded build runner
        add_builds(app, builds)
    if housekeeping_interval > 0:
        async def expire_uploads() -> None:
            expired = await registry.uploads.expire()
            if expired:
                log.info("expired %d stale upload sessions", expired)
        app.cleanup_ctx.append(periodic("expire-uploads", housekeeping_interval,
                                        expire_uploads))
    collector = registry.gc
    if gc_interval > 0 and collector is not None and lock_dir is not None:
        async def collect() -> None:
            with try_lock(lock_dir / "gc.lock") as mine:
                if mine:
                    try:
                        report = await collector.collect()
                    except Exception:
                        if metrics is not None:
                            metrics.gc_runs.labels("error").inc()
                        raise
                    if metrics is not None:
                        metrics.gc_runs.labels("ok").inc()
                        metrics.gc_bytes.inc(report.bytes)
                    log.info("gc: %s", {k: v for k, v in report.to_json().items()
                                        if k in ("links", "bytes", "seconds")})
        app.cleanup_ctx.append(periodic("gc", gc_interval, collect))
    return app


async def dispatch_base(request: web.Request) -> web.StreamResponse:
    raise web.HTTPMovedPermanently("/v2/")
