"""``GET /healthz``: for load balancers and process supervisors (no authentication).

200 ``{"status": "ok"}`` when this worker answers and its metadata store answers a read within
``HEALTH_TIMEOUT`` seconds; 503 ``{"status": "unavailable", "reason": ...}`` otherwise, so a
node whose database is gone is taken out of rotation instead of failing every request. A data
dir whose disk is (nearly) full answers 503 with reason "low disk: …" (pushes there get 507).
"""

from __future__ import annotations

import asyncio
import logging
import os

from aiohttp import web

from strata.server.http import json_response
from strata.server.keys import DATA_DIR, REGISTRY

HEALTH_TIMEOUT = 2.0
LOW_DISK_BYTES = 256 << 20  # "low" below this, or below 5% of a smaller disk
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
    data_dir = request.app.get(DATA_DIR)
    low = _low_disk(data_dir) if data_dir is not None else None
    if low is not None:
        log.warning("health check: %s", low)
        return json_response({"status": "unavailable", "reason": low}, status=503,
                             headers={"Cache-Control": "no-store"})
    return json_response({"status": "ok"}, headers={"Cache-Control": "no-store"})


def _low_disk(path: os.PathLike[str] | str) -> str | None:
    try:
        st = os.statvfs(path)
    except OSError as exc:
        return f"data dir unreadable: {exc.strerror}"
    free, total = st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize
    if free < min(LOW_DISK_BYTES, total // 20) or free == 0:
        return f"low disk: {free >> 20} MiB free of {total >> 20} MiB in the data dir"
    return None
