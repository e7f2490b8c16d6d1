"""Failed-login limits hold for the whole server, not per worker process."""

from __future__ import annotations

import base64

import pytest

from support.server import StrataServer

pytestmark = pytest.mark.server

PER_USER_BURST = 10  # strata.auth.service.LoginLimits().per_user_burst


def test_password_guesses_share_one_budget_across_workers(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with StrataServer(tmp_path, "--workers", "2") as server:
        bad = base64.b64encode(b"admin:not-the-password").decode()
        statuses = []
        for _ in range(3 * PER_USER_BURST):  # a new connection each: spread over the workers
            resp = server.request("GET", "/auth/token?service=strata",
                                  headers={"Authorization": f"Basic {bad}"})
            statuses.append(resp.status)
        assert set(statuses) <= {401, 429}, statuses
        # At most the burst (plus what refills meanwhile, 10 a minute) is ever checked.
        assert statuses.count(401) <= PER_USER_BURST + 1, statuses
        assert statuses[-1] == 429
        good = base64.b64encode(f"admin:{server.admin_password}".encode()).decode()
        # The right password is throttled too while the budget is spent (no oracle).
        assert server.request("GET", "/auth/token?service=strata",
                              headers={"Authorization": f"Basic {good}"}).status == 429
