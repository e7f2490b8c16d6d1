"""A real ``strata serve`` process for tests: start, probe, stop, kill, restart.

Usage::

    with StrataServer(tmp_path, "--workers", "2") as server:
        resp = server.request("GET", "/v2/")
        assert resp.status == 200
        server.kill()       # SIGKILL the whole process group (crash test) ...
        server.restart()    # ... and come back on the same port and data dir

The public surface is small on purpose:

- ``StrataServer(base_dir, *extra_args, env=None, startup_timeout=30.0, umask=None)``:
  ``umask`` is the server process's umask (None: the test's). Nothing runs until
  :meth:`start` (or ``with``). ``base_dir`` holds ``data/`` (the ``--data`` dir) and
  ``server.log`` (the process's stdout and stderr, appended across restarts).
- Authentication is on (the server's default): the harness sets ``STRATA_ADMIN_PASSWORD`` (a
  random one unless ``env`` gives it) and exposes :attr:`admin_user`, :attr:`admin_password`,
  :attr:`admin_creds` (``admin:PW``, for ``skopeo --creds``) and :attr:`admin_headers` (Basic).
  ``tls_context=`` (an ``ssl.SSLContext`` trusting the server's CA) makes :attr:`url` and
  :meth:`request` use HTTPS, for servers started with ``--tls-cert``/``--tls-key``.
- :attr:`url` (``http://127.0.0.1:PORT``), :attr:`host_port` (``127.0.0.1:PORT``, for OCI
  references), :attr:`port`, :attr:`data_dir`, :attr:`log_path`, :attr:`pid`.
- :meth:`start`, :meth:`stop` (SIGTERM, wait; returns the exit code), :meth:`kill` (SIGKILL),
  :meth:`restart` (stop if running, start on the same port and data dir),
  :meth:`wait_ready`, :meth:`log_text`, :meth:`request` (one plain HTTP request, no proxies).

The server runs in its own session (process group), so :meth:`kill` and :meth:`stop` also reach the
worker processes that ``--workers N`` forks.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

HOST = "127.0.0.1"


class ServerStartError(RuntimeError):
    """The server did not answer ``GET /v2/`` in time, or exited; the message has its log."""


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str] = field(repr=False)  # lower-cased names; repeated headers joined
    body: bytes = field(repr=False)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


def free_port(host: str = HOST) -> int:
    """A TCP port that was free a moment ago on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def strata_command() -> list[str]:
    """The ``strata`` entry point of the running interpreter's environment (the venv)."""
    exe = Path(sys.executable).parent / "strata"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("strata")
    if found:
        return [found]
    return [sys.executable, "-c", "from strata.cli.main import main; main()"]


class StrataServer:
    """One ``strata serve --data BASE/data --listen 127.0.0.1:PORT [extra args]`` process."""

    def __init__(self, base_dir: Path, *extra_args: str, env: Mapping[str, str] | None = None,
                 startup_timeout: float = 30.0, tls_context: ssl.SSLContext | None = None,
                 umask: int | None = None, wrapper: Sequence[str] = ()) -> None:
        """*wrapper*: a command that runs ``strata serve`` (``unshare ...``), whose pid is then
        :attr:`pid`."""
        self.wrapper = tuple(wrapper)
        self.base_dir = Path(base_dir)
        self.data_dir = self.base_dir / "data"
        self.log_path = self.base_dir / "server.log"
        self.extra_args = tuple(extra_args)
        self.startup_timeout = startup_timeout
        self.port = free_port()
        self._env = dict(env or {})
        self._proc: subprocess.Popen[bytes] | None = None
        self.tls_context = tls_context
        self.umask = -1 if umask is None else umask
        self.admin_user = "admin"
        self.admin_password = self._env.get("STRATA_ADMIN_PASSWORD") or secrets.token_urlsafe(16)

    # -- addresses -------------------------------------------------------------------------
    @property
    def host_port(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls_context else 'http'}://{self.host_port}"

    @property
    def admin_creds(self) -> str:
        return f"{self.admin_user}:{self.admin_password}"

    @property
    def admin_headers(self) -> dict[str, str]:
        token = base64.b64encode(self.admin_creds.encode()).decode()
        return {"Authorization": f"Basic {token}"}

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- life cycle ------------------------------------------------------------------------
    def start(self) -> StrataServer:
        if self.running:
            raise RuntimeError(f"server already running (pid {self.pid})")
        self.base_dir.mkdir(parents=True, exist_ok=True)
        cmd = [*self.wrapper, *strata_command(), "serve", "--data", str(self.data_dir),
               "--listen", self.host_port, *self.extra_args]
        env = {**os.environ, "PYTHONUNBUFFERED": "1",
               "STRATA_ADMIN_PASSWORD": self.admin_password, **self._env}
        with self.log_path.open("ab") as log:
            log.write(f"\n=== {' '.join(cmd)}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                          stderr=subprocess.STDOUT, env=env,
                                          start_new_session=True, umask=self.umask)
        try:
            self.wait_ready()
        except BaseException:
            self.kill()
            raise
        return self

    def wait_ready(self, timeout: float | None = None) -> None:
        """Poll ``GET /v2/`` until it answers (200, or 401 with auth on); raise
        :class:`ServerStartError` otherwise."""
        deadline = time.monotonic() + (self.startup_timeout if timeout is None else timeout)
        last_error = "no answer"
        while True:
            proc = self._proc
            if proc is None:
                raise ServerStartError("server was never started")
            code = proc.poll()
            if code is not None:
                raise ServerStartError(f"strata serve exited with {code} before answering on "
                                       f"{self.url}/v2/\n--- {self.log_path}\n{self.log_text()}")
            try:
                resp = self.request("GET", "/v2/", timeout=2.0)
            except OSError as exc:
                last_error = repr(exc)
            else:
                if resp.status in (200, 401):
                    return
                last_error = f"HTTP {resp.status}"
            if time.monotonic() > deadline:
                raise ServerStartError(f"strata serve did not answer on {self.url}/v2/ "
                                       f"({last_error})\n--- {self.log_path}\n{self.log_text()}")
            time.sleep(0.05)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, wait for exit (SIGKILL after ``timeout``); returns the exit code."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._killpg()
                proc.wait()
        self._reap_group()
        return proc.returncode

    def kill(self) -> int | None:
        """SIGKILL the server and its workers (a crash); returns the exit code."""
        proc = self._proc
        if proc is None:
            return None
        self._killpg()
        proc.wait()
        self._reap_group()
        return proc.returncode

    def restart(self) -> StrataServer:
        """Stop (if running), then start again on the same port and data dir."""
        self.stop()
        return self.start()

    # -- helpers ---------------------------------------------------------------------------
    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def request(self, method: str, path: str, *, headers: Mapping[str, str] | None = None,
                body: bytes | None = None, timeout: float = 30.0) -> Response:
        """One HTTP request to the server (``path`` starts with ``/``), never through a proxy."""
        conn = (http.client.HTTPSConnection(HOST, self.port, timeout=timeout,
                                            context=self.tls_context)
                if self.tls_context else http.client.HTTPConnection(HOST, self.port,
                                                                    timeout=timeout))
        try:
            conn.request(method, path, body=body, headers=dict(headers or {}))
            resp = conn.getresponse()
            data = resp.read()
            merged: dict[str, str] = {}
            for name, value in resp.getheaders():
                key = name.lower()
                merged[key] = f"{merged[key]}, {value}" if key in merged else value
            return Response(resp.status, merged, data)
        finally:
            conn.close()

    def _killpg(self) -> None:
        if self._proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._proc.pid, signal.SIGKILL)

    def _reap_group(self) -> None:
        """Workers of a group whose leader is gone must not outlive it (and hold the port)."""
        if self._proc is None:
            return
        deadline = time.monotonic() + 10.0
        while True:
            try:
                os.killpg(self._proc.pid, 0)
            except (ProcessLookupError, PermissionError):
                return
            if time.monotonic() > deadline:
                self._killpg()
                return
            time.sleep(0.05)

    def __enter__(self) -> StrataServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"StrataServer({self.url}, data={self.data_dir}, pid={self.pid})"
