"""``create_app``: the only place where HTTP meets concrete stores and policies."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from strata.registry.service import Registry
from strata.server.errors import add_api_version, error_middleware
from strata.server.keys import REGISTRY
from strata.server.routes import dispatch

log = logging.getLogger("strata.server")


def create_app(registry: Registry, *, housekeeping_interval: float = 600.0,
               client_max_size: int = 1 << 20) -> web.Application:
    app = web.Application(middlewares=[error_middleware], client_max_size=client_max_size)
    app[REGISTRY] = registry
    app.router.add_route("*", "/v2", dispatch_base)
    app.router.add_route("*", "/v2/{tail:.*}", dispatch)
    app.on_response_prepare.append(add_api_version)
    if housekeeping_interval > 0:
        app.cleanup_ctx.append(_housekeeping(registry, housekeeping_interval))
    return app


async def dispatch_base(request: web.Request) -> web.StreamResponse:
    raise web.HTTPMovedPermanently("/v2/")


def _housekeeping(
    registry: Registry, interval: float
) -> Callable[[web.Application], contextlib.AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        async def loop() -> None:
            while True:
                await asyncio.sleep(interval)
                try:
                    expired = await registry.uploads.expire()
                    if expired:
                        log.info("expired %d stale upload sessions", expired)
                except Exception:
                    log.exception("housekeeping failed")

        task = asyncio.create_task(loop())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return ctx
