"""``GET /healthz``: for load balancers and process supervisors (no authentication).

200 ``{"status": "ok"}`` when this worker answers and its metadata store answers a read within
``HEALTH_TIMEOUT`` seconds; 503 ``{"status": "unavailable", "reason": ...}`` otherwise, so a
node whose database is gone is taken out of rotation instead of failing every request.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from strata.server.http import json_response
from strata.server.keys import REGISTRY

HEALTH_TIMEOUT = 2.0
log = logging.getLogger("strata.server")


async def healthz(request: web.Request) -> web.StreamResponse:
    try:
        await asyncio.wait_for(request.app[REGISTRY].discovery.ready(), HEALTH_TIMEOUT)
    except Exception as exc:  # whatever the store raised: the answer is "not ready"
        reason = "metadata store timed out" if isinstance(exc, TimeoutError) else \
            f"metadata store failed: {type(exc).__name__}"
        log.warning("health check: %s: %s", reason, exc)
        return json_response({"status": "unavailable", "reason": reason}, status=503,
                             headers={"Cache-Control": "no-store"})
    return json_response({"status": "ok"}, headers={"Cache-Control": "no-store"})
