"""A bound on concurrent blob uploads per worker, shared fairly between accounts: more get 429
``TOOMANYREQUESTS`` with ``Retry-After``.

Uploads hold a socket, a file and a running hash each; bounding them keeps a flood of slow
pushes from taking the server down while pulls go on. An account may hold at most its fair
share of the ``limit`` slots: ``limit // (n + 1)`` (at least 1), where ``n`` counts the
accounts holding slots, itself included. The ``+ 1`` keeps a share free for an account that
has none yet: one account alone gets half, two get a third each, and so on, so 600 slow 1-byte
PATCHes of one account leave the others room to push, and a newcomer always finds a slot while
fewer accounts than slots are uploading. A request over its account's share is refused at
once (no queue: a slot is not taken back from a slow upload, so waiting would not help).
Without authentication there are no accounts: every request shares one pool, as before.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator

from aiohttp import web

from strata.errors import Code, RegistryError
from strata.server.metrics import METRICS


class UploadGate:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0
        self.held: Counter[str] = Counter()  # slots per account (no entry at 0)

    def share(self, account: str) -> int:
        """The most slots ``account`` may hold now."""
        accounts = len(self.held) + (account not in self.held)
        return max(1, self.limit // (accounts + 1))

    @contextlib.contextmanager
    def enter(self, request: web.Request, account: str | None = None) -> Iterator[None]:
        if self.active >= self.limit:
            raise RegistryError(Code.TOOMANYREQUESTS,
                                f"more than {self.limit} uploads in progress on this worker",
                                headers={"Retry-After": "1"})
        if account is not None and self.held[account] >= self.share(account):
            raise RegistryError(
                Code.TOOMANYREQUESTS, {"account": account, "uploads": self.held[account]},
                message=f"too many requests: {account} has {self.held[account]} uploads in "
                        f"progress on this worker, its fair share of {self.limit} while "
                        f"{len(self.held)} accounts upload",
                headers={"Retry-After": "1"})
        metrics = request.app.get(METRICS)
        self.active += 1
        if account is not None:
            self.held[account] += 1
        if metrics is not None:
            metrics.uploads.inc()
        try:
            yield
        finally:
            self.active -= 1
            if account is not None:
                self.held[account] -= 1
                if self.held[account] <= 0:
                    del self.held[account]
            if metrics is not None:
                metrics.uploads.dec()


UPLOAD_GATE = web.AppKey("upload_gate", UploadGate)
