"""Upload sessions per account on a real ``strata serve --workers 2``: the cap
(``--max-upload-sessions``) counts an account's sessions on every worker (they are recorded
with their account in the shared database), and sessions that received nothing stop counting
and are refused after ``--upload-idle``."""

from __future__ import annotations

import http.client
import json
import time

import pytest

from support.server import HOST, StrataServer

pytestmark = pytest.mark.server


def post_session(server: StrataServer, headers: dict[str, str]) -> tuple[int, dict[str, str],
                                                                         bytes]:
    # A new connection each time: SO_REUSEPORT spreads them over both workers.
    conn = http.client.HTTPConnection(HOST, server.port, timeout=30)
    try:
        conn.request("POST", "/v2/sessions/a/blobs/uploads/", headers=headers)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def test_sessions_are_capped_per_account_across_workers(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with StrataServer(tmp_path, "--workers", "2", "--max-upload-sessions", "6",
                      "--upload-idle", "3") as server:
        headers = server.admin_headers
        opened = []
        for _ in range(6):
            status, resp_headers, _ = post_session(server, headers)
            assert status == 202
            opened.append(resp_headers["location"])
        for _ in range(4):  # whichever worker answers
            status, resp_headers, body = post_session(server, headers)
            assert status == 429, body
            err = json.loads(body)["errors"][0]
            assert err["code"] == "TOOMANYREQUESTS" and "most allowed is 6" in err["message"]
            assert resp_headers["retry-after"].isdigit()
        # One with a byte in it stays open; the empty ones go idle after 3 s.
        resp = server.request("PATCH", opened[0], body=b"x", headers={
            **headers, "Content-Type": "application/octet-stream"})
        assert resp.status == 202
        time.sleep(3.5)
        assert server.request("GET", opened[1], headers=headers).status == 404
        assert server.request("GET", opened[0], headers=headers).status == 204
        for _ in range(5):  # 6 minus the one still open
            assert post_session(server, headers)[0] == 202
        assert post_session(server, headers)[0] == 429
