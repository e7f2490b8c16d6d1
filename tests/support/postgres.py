"""A throwaway PostgreSQL cluster for tests: initdb into a temp dir, start, hand out databases.

Usage::

    with PostgresCluster() as pg:
        pg.create_database("t1")
        engine = sqlalchemy.create_engine(pg.url("t1"))

Why it looks the way it does:

- The cluster lives in a directory of its own under the system temp dir (not under pytest's
  basetemp, whose directories are ``0700``): when the tests run as root, PostgreSQL refuses to
  run as root, so ``initdb``, ``pg_ctl`` and the server run as an unprivileged account
  (``postgres`` if it exists, else ``nobody``), which must be able to reach the directory.
- It listens on 127.0.0.1 only, on a port that was free a moment ago (retried if another
  process takes it first), plus a unix socket in its own directory.
- Durability is off (``fsync``, ``synchronous_commit``, ``full_page_writes``): a test cluster
  is thrown away, and this keeps cloning a database from a template in the milliseconds.
- The default collation is ICU ``en-US``, as on a typical production cluster: it sorts
  ``a`` < ``B`` and ignores punctuation at first, so a query that relies on the database's
  default collation for byte order fails here instead of in production.
- :meth:`stop` is registered with :mod:`atexit` as well, so an interrupted session (an
  exception, ``pytest -x``, Ctrl-C) does not leave a server behind.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import psycopg
from psycopg import sql

from support.server import free_port

HOST = "127.0.0.1"
SUPERUSER = "strata"
_MIN_MAJOR = 15  # initdb --locale-provider=icu
_SETTINGS = {
    "listen_addresses": HOST,
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
    "shared_buffers": "32MB",
    "log_min_messages": "warning",
}


class PostgresError(RuntimeError):
    """The cluster could not be created, started or used; the message says why (log included)."""


def find_bindir() -> Path:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres`` (all from one install).

    ``STRATA_PG_BINDIR`` if set (and only it); else the directory ``pg_ctl`` on ``PATH``
    resolves to (often a symlink into ``/usr/lib/postgresql/N/bin``); else the newest
    ``/usr/lib/postgresql/*/bin``.
    """
    candidates: list[Path] = []
    if os.environ.get("STRATA_PG_BINDIR"):  # asked for: that one or none
        candidates.append(Path(os.environ["STRATA_PG_BINDIR"]))
    else:
        found = shutil.which("pg_ctl")
        if found:
            candidates.append(Path(found).resolve().parent)
        candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for bindir in candidates:
        if all((bindir / exe).is_file() for exe in ("initdb", "pg_ctl", "postgres")):
            return bindir
    raise PostgresError(
        "PostgreSQL binaries (initdb, pg_ctl, postgres) not found: set STRATA_PG_BINDIR or put "
        f"pg_ctl on PATH (looked in {', '.join(map(str, candidates)) or 'nothing'})")


def _server_account() -> pwd.struct_passwd | None:
    """Who runs the server: None (ourselves) unless we are root, which PostgreSQL refuses."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise PostgresError("running as root and no 'postgres' or 'nobody' account to run "
                        "PostgreSQL as")


class PostgresCluster:
    def __init__(self, *, bindir: Path | None = None, startup_timeout: float = 30.0) -> None:
        self.bindir = bindir or find_bindir()
        self.startup_timeout = startup_timeout
        self.port = 0
        self._account = _server_account()
        self._root: Path | None = None
        self._running = False

    # -- paths ---------------------------------------------------------------------------
    @property
    def root(self) -> Path:
        if self._root is None:
            raise PostgresError("cluster not started")
        return self._root

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_path(self) -> Path:
        return self.root / "server.log"

    def url(self, database: str = "postgres") -> str:
        """A SQLAlchemy URL (psycopg 3 driver) for ``database`` as the superuser."""
        return f"postgresql+psycopg://{SUPERUSER}@{HOST}:{self.port}/{database}"

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> PostgresCluster:
        if self._running:
            return self
        self._check_version()
        self._root = Path(tempfile.mkdtemp(prefix="strata-pg-"))
        atexit.register(self.stop)
        try:
            if self._account is not None:
                os.chown(self._root, self._account.pw_uid, self._account.pw_gid)
            self._initdb()
            for attempt in range(3):
                self.port = free_port(HOST)
                if self._pg_ctl_start():
                    break
                if "could not bind" not in self.log_text() or attempt == 2:
                    raise PostgresError(f"PostgreSQL did not start on {HOST}:{self.port}; "
                                        f"server log:\n{self.log_text()[-4000:]}")
            self._running = True
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the server (fast shutdown, then SIGKILL) and remove its directory. Idempotent."""
        atexit.unregister(self.stop)
        root, self._root = self._root, None
        if root is None:
            return
        if (root / "data" / "postmaster.pid").exists():
            try:
                self._run([str(self.bindir / "pg_ctl"), "stop", "-D", str(root / "data"),
                           "-m", "fast", "-w", "-t", "20"], timeout=30)
            except (PostgresError, subprocess.TimeoutExpired):
                _kill_postmaster(root / "data")
        self._running = False
        shutil.rmtree(root, ignore_errors=True)

    def halt(self) -> None:
        """Stop the server (fast shutdown: open connections are cut) but keep its data."""
        self._run([str(self.bindir / "pg_ctl"), "stop", "-D", str(self.data_dir),
                   "-m", "fast", "-w", "-t", "20"], timeout=30)

    def resume(self) -> None:
        """Start the stopped server again, on the same port."""
        if not self._pg_ctl_start():
            raise PostgresError(f"PostgreSQL did not come back on {HOST}:{self.port}; "
                                f"server log:\n{self.log_text()[-4000:]}")

    def __enter__(self) -> PostgresCluster:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- databases -----------------------------------------------------------------------
    def connect(self, database: str = "postgres") -> psycopg.Connection[Any]:
        """A plain psycopg connection in autocommit mode (for CREATE/DROP DATABASE)."""
        return psycopg.connect(host=HOST, port=self.port, user=SUPERUSER, dbname=database,
                               autocommit=True, connect_timeout=10)

    def create_database(self, name: str, *, template: str | None = None) -> str:
        """Create ``name`` (a copy of ``template`` if given); returns its URL."""
        query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template is not None:
            query += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        with self.connect() as conn:
            conn.execute(query)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop ``name``, disconnecting whatever a test left connected to it."""
        with self.connect() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))

    # -- internals -----------------------------------------------------------------------
    def _run(self, args: list[str], *, timeout: float) -> subprocess.CompletedProcess[str]:
        kwargs: dict[str, Any] = {}
        if self._account is not None:
            kwargs = {"user": self._account.pw_uid, "group": self._account.pw_gid,
                      "extra_groups": []}
        env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
        env.pop("PGDATA", None)
        try:
            done = subprocess.run(args, capture_output=True, text=True, timeout=timeout,
                                  cwd="/", env=env, check=False, **kwargs)
        except OSError as exc:
            raise PostgresError(f"cannot run {args[0]}: {exc}") from exc
        if done.returncode != 0:
            raise PostgresError(f"{' '.join(args)} failed ({done.returncode}):\n"
                                f"{done.stdout}{done.stderr}")
        return done

    def _check_version(self) -> None:
        out = subprocess.run([str(self.bindir / "postgres"), "--version"], capture_output=True,
                             text=True, check=False).stdout
        try:
            major = int(out.split()[-1].split(".")[0])
        except (IndexError, ValueError):
            raise PostgresError(f"cannot tell the PostgreSQL version from {out!r}") from None
        if major < _MIN_MAJOR:
            raise PostgresError(f"PostgreSQL >= {_MIN_MAJOR} needed, {self.bindir} has {out}")

    def _initdb(self) -> None:
        self._run([str(self.bindir / "initdb"), "-D", str(self.data_dir), "-U", SUPERUSER,
                   "--auth=trust", "--encoding=UTF8", "--locale=C",
                   "--locale-provider=icu", "--icu-locale=en-US", "--no-sync",
                   "--no-instructions"], timeout=120)

    def _pg_ctl_start(self) -> bool:
        options = " ".join([f"-p {self.port}", f"-k {self.root}",
                            *(f"-c {k}={v}" for k, v in _SETTINGS.items())])
        try:
            self._run([str(self.bindir / "pg_ctl"), "start", "-D", str(self.data_dir),
                       "-l", str(self.log_path), "-w", "-t", str(int(self.startup_timeout)),
                       "-o", options], timeout=self.startup_timeout + 10)
        except (PostgresError, subprocess.TimeoutExpired):
            _kill_postmaster(self.data_dir)
            return False
        return True


def _kill_postmaster(data_dir: Path) -> None:
    """SIGKILL the postmaster named in ``postmaster.pid`` (its children exit with it)."""
    try:
        pid = int((data_dir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.05)
