"""The ``StrataServer`` harness itself: start, stop, kill (workers included), restart, errors."""

from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path

import pytest

from support.server import ServerStartError, StrataServer

pytestmark = pytest.mark.server


def port_closed(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def test_start_stop(strata_server: StrataServer) -> None:
    assert strata_server.url == f"http://{strata_server.host_port}"
    resp = strata_server.request("GET", "/v2/", headers=strata_server.admin_headers)
    assert resp.status == 200
    assert resp.header("Docker-Distribution-API-Version") == "registry/2.0"
    assert strata_server.data_dir.is_dir()
    assert strata_server.stop() == 0
    assert port_closed(strata_server.port)
    assert "serving" in strata_server.log_text()


def test_kill_and_restart_with_workers(tmp_path: Path) -> None:
    server = StrataServer(tmp_path, "--workers", "2").start()
    try:
        blob = b"survives a kill -9"
        digest = f"sha256:{hashlib.sha256(blob).hexdigest()}"
        put = server.request("POST", f"/v2/harness/blobs/uploads/?digest={digest}", body=blob,
                             headers={**server.admin_headers,
                                      "Content-Type": "application/octet-stream"})
        assert put.status == 201, put.body
        pid, port = server.pid, server.port
        assert pid is not None
        assert server.kill() == -9
        assert group_gone(pid)  # the forked workers too
        assert port_closed(port)
        server.restart()
        assert server.port == port and server.pid != pid
        head = server.request("HEAD", f"/v2/harness/blobs/{digest}",
                              headers=server.admin_headers)
        assert head.status == 200
        assert head.header("Content-Length") == str(len(blob))
    finally:
        server.stop()


def test_start_failure_shows_the_log(tmp_path: Path) -> None:
    server = StrataServer(tmp_path, "--workers", "not-a-number", startup_timeout=10)
    with pytest.raises(ServerStartError, match="not-a-number"):
        server.start()
    assert not server.running
