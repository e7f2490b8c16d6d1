"""A bound on concurrent blob uploads per worker: more get 429 ``TOOMANYREQUESTS``.

Uploads hold a socket, a file and a running hash each; bounding them keeps a flood of slow
pushes from taking the server down while pulls go on.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from aiohttp import web

from strata.errors import Code, RegistryError
from strata.server.metrics import METRICS


class UploadGate:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0

    @contextlib.contextmanager
    def enter(self, request: web.Request) -> Iterator[None]:
        if self.active >= self.limit:
            raise RegistryError(Code.TOOMANYREQUESTS,
                                f"more than {self.limit} uploads in progress on this worker",
                                headers={"Retry-After": "1"})
        metrics = request.app.get(METRICS)
        self.active += 1
        if metrics is not None:
            metrics.uploads.inc()
        try:
            yield
        finally:
            self.active -= 1
            if metrics is not None:
                metrics.uploads.dec()


UPLOAD_GATE = web.AppKey("upload_gate", UploadGate)
