"""Slow clients against a real ``strata serve``: a connection that trickles its request headers
(slowloris) or sits idle is closed after ``--idle-timeout``, while other clients are served."""

from __future__ import annotations

import socket
import time

import pytest

from support.server import HOST, StrataServer

pytestmark = pytest.mark.server


def closed_within(sock: socket.socket, seconds: float) -> float | None:
    """Seconds until the server closed ``sock`` (EOF or reset), or None if it did not."""
    sock.settimeout(0.2)
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        try:
            if sock.recv(4096) == b"":
                return time.monotonic() - start
        except TimeoutError:
            continue
        except ConnectionResetError:
            return time.monotonic() - start
    return None


def test_trickled_headers_and_idle_connections_are_closed(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with StrataServer(tmp_path, "--workers", "1", "--idle-timeout", "1") as server:
        slow = socket.create_connection((HOST, server.port))
        idle = socket.create_connection((HOST, server.port))
        try:
            slow.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n")  # headers never finished
            for _ in range(3):  # ...and more of them, slowly: still no complete request
                time.sleep(0.2)
                slow.sendall(b"X-Slow: 1\r\n")
            # Meanwhile the server answers everyone else.
            assert server.request("GET", "/v2/").status in (200, 401)
            assert closed_within(slow, 5.0) is not None
            assert closed_within(idle, 5.0) is not None
        finally:
            slow.close()
            idle.close()


def test_default_idle_timeout_keeps_a_working_keepalive_connection(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with StrataServer(tmp_path, "--workers", "1", "--idle-timeout", "3") as server:
        conn = socket.create_connection((HOST, server.port))
        try:
            for _ in range(4):  # requests 1 s apart on one connection: never idle for 3 s
                conn.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
                conn.settimeout(5)
                head = conn.recv(65536)
                assert head.startswith(b"HTTP/1.1 "), head[:100]
                time.sleep(1.0)
        finally:
            conn.close()
