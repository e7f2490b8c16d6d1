"""Start and stop the two registries under test: ``strata serve`` and CNCF distribution.

Each gets a free loopback port and a fresh data directory; each runs in its own session (process
group) so that stopping it reaches its workers too.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

DISTRIBUTION_CONFIG = """\
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
  cache:
    blobdescriptor: {cache}
  maintenance:
    uploadpurging:
      enabled: false
  redirect:
    disable: true
http:
  addr: 127.0.0.1:{port}
  secret: strata-bench-not-a-secret
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: false
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    name: str
    argv: list[str]
    port: int
    data_dir: Path
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 30.0) -> None:
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True,
                                     env=self._environ())
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; "
                                   f"log:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.base}/v2/", timeout=1) as resp:
                    if resp.status == 200:
                        return
            except urllib.error.HTTPError as exc:
                if exc.code == 401:  # the auth probe: a registry with authentication on
                    return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer /v2/ within {timeout}s; "
                           f"log:\n{self.log_tail()}")

    def _environ(self) -> dict[str, str]:
        # The benchmark decides the data dir and database: ignore the caller's STRATA_*.
        env = {k: v for k, v in os.environ.items() if not k.startswith("STRATA_")}
        env.update(self.env)
        return env

    def stop(self, timeout: float = 10.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        pgid = proc.pid  # start_new_session: the group is the one we created
        try:
            os.killpg(pgid, signal.SIGTERM)
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        except ProcessLookupError:
            return
        # Reap stragglers of our own group (workers that ignored SIGTERM).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=timeout)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def _serve_options(exe: Path) -> str:
    try:
        return subprocess.run([str(exe), "serve", "--help"], capture_output=True, text=True,
                              timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def strata_server(workdir: Path, workers: int, extra: list[str] | None = None, *,
                  name: str = "strata", src: Path | None = None) -> Server:
    """``strata serve`` as an open registry (distribution runs without auth too); with *src*,
    the strata package of another checkout's ``src`` dir (``PYTHONPATH`` comes before the
    venv's editable install): A/B runs."""
    data = workdir / f"{name}-data"
    data.mkdir(parents=True)
    port = free_port()
    exe = Path(sys.executable).with_name("strata")
    if not exe.exists():
        exe = REPO_ROOT / ".venv" / "bin" / "strata"
    argv = [str(exe), "serve", "--data", str(data), "--listen", f"127.0.0.1:{port}",
            "--workers", str(workers)]
    options = _serve_options(exe)
    if "--no-auth" in options:
        argv.append("--no-auth")
    if "--no-access-log" in options:
        argv.append("--no-access-log")
    argv += extra or []
    env = {"PYTHONPATH": str(src.resolve())} if src is not None else {}
    return Server(name, argv, port, data, workdir / f"{name}.log", env=env)


def distribution_server(workdir: Path, cache: str = "inmemory") -> Server:
    data = workdir / "distribution-data"
    data.mkdir(parents=True)
    port = free_port()
    config = workdir / "distribution.yml"
    config.write_text(DISTRIBUTION_CONFIG.format(root=data, port=port, cache=cache))
    exe = shutil.which("docker-registry") or "/usr/bin/docker-registry"
    return Server("distribution", [exe, "serve", str(config)], port, data,
                  workdir / "distribution.log")
