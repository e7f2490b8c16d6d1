"""Debian's ``nginx`` as a round-robin load balancer in front of ``strata serve`` nodes.

Usage::

    with Nginx(tmp_path / "lb", [a.host_port, b.host_port]) as lb:
        lb.url, lb.host_port            # what clients are given
        lb.upstreams_used()             # the node addresses that served requests, per path

The configuration is generated into ``base_dir`` (``nginx.conf``, logs, temp dirs) and nginx
runs in the foreground (``-g 'daemon off;'``) on a free loopback port, as a proxy for a
registry must be set up: no body size limit (``client_max_body_size 0``), request and response
bodies streamed, not buffered (``proxy_request_buffering off``, ``proxy_buffering off``),
HTTP/1.1 with keep-alive to the nodes, long timeouts for big blobs. The access log records the
node (``$upstream_addr``) of every request. No ``nginx`` binary: fail in CI, skip elsewhere.
"""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from support.clients import require_tool
from support.server import HOST, Response, free_port

_CONF = """\
{user}worker_processes 1;
error_log {base}/error.log info;
pid {base}/nginx.pid;
events {{ worker_connections 512; }}
http {{
    log_format upstream '$request_method $uri $status $upstream_addr';
    access_log {base}/access.log upstream;
    client_body_temp_path {base}/tmp/body;
    proxy_temp_path {base}/tmp/proxy;
    fastcgi_temp_path {base}/tmp/fastcgi;
    uwsgi_temp_path {base}/tmp/uwsgi;
    scgi_temp_path {base}/tmp/scgi;
    upstream strata {{
{servers}
        keepalive 16;
    }}
    server {{
        listen {host}:{port};
        client_max_body_size 0;
        proxy_request_buffering off;
        proxy_buffering off;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $http_host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_read_timeout 900s;
        proxy_send_timeout 900s;
        location / {{
            proxy_pass http://strata;
        }}
    }}
}}
"""


class Nginx:
    def __init__(self, base_dir: Path, upstreams: Sequence[str],
                 startup_timeout: float = 20.0) -> None:
        self.base_dir = Path(base_dir)
        self.upstreams = list(upstreams)
        self.port = free_port()
        self.startup_timeout = startup_timeout
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def host_port(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host_port}"

    @property
    def config_path(self) -> Path:
        return self.base_dir / "nginx.conf"

    def write_config(self) -> None:
        (self.base_dir / "tmp").mkdir(parents=True, exist_ok=True)
        servers = "\n".join(f"        server {u};" for u in self.upstreams)
        # as root, nginx's workers would switch to "nobody", who cannot read the tmp dir
        user = "user root;\n" if os.geteuid() == 0 else ""
        self.config_path.write_text(_CONF.format(user=user, base=self.base_dir, host=HOST,
                                                 port=self.port, servers=servers))

    def start(self) -> Nginx:
        nginx = require_tool("nginx")
        self.write_config()
        with (self.base_dir / "stderr.log").open("ab") as log:
            self._proc = subprocess.Popen(
                [nginx, "-p", str(self.base_dir), "-c", str(self.config_path),
                 "-g", "daemon off;"], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True)
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(f"nginx exited with {self._proc.returncode}: "
                                   f"{self.log_text()}")
            try:
                self.request("GET", "/healthz", timeout=5.0)
                return self
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"nginx did not listen in time: {self.log_text()}") \
                        from None
                time.sleep(0.05)

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def request(self, method: str, path: str, *, headers: Mapping[str, str] | None = None,
                timeout: float = 30.0, source: str | None = None) -> Response:
        """One plain HTTP request through the balancer (from the loopback address *source*,
        e.g. ``127.0.0.3``, to stand for another client machine)."""
        conn = http.client.HTTPConnection(HOST, self.port, timeout=timeout,
                                          source_address=None if source is None else (source, 0))
        try:
            conn.request(method, path, headers=dict(headers or {}))
            resp = conn.getresponse()
            return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()},
                            resp.read())
        finally:
            conn.close()

    def log_text(self) -> str:
        parts = []
        for name in ("stderr.log", "error.log"):
            path = self.base_dir / name
            if path.exists():
                parts.append(path.read_text(errors="replace")[-4000:])
        return "\n".join(parts)

    def access_log(self) -> list[tuple[str, str, int, str]]:
        """(method, path, status, upstream address) of every request served so far."""
        path = self.base_dir / "access.log"
        if not path.exists():
            return []
        entries = []
        for line in path.read_text().splitlines():
            method, uri, status, upstream = line.split(" ", 3)
            entries.append((method, uri, int(status), upstream))
        return entries

    def upstreams_used(self, prefix: str = "/") -> set[str]:
        """The node addresses that answered requests for paths under *prefix*."""
        return {upstream for _m, uri, _s, upstream in self.access_log()
                if uri.startswith(prefix)}

    def __enter__(self) -> Nginx:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
