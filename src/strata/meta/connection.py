"""Connecting to the database: the SQLAlchemy engine (SQLite: WAL, one writer at a time; or
PostgreSQL), the data dir's write lock, migrations. Used by :class:`strata.meta.database.Database`;
outside :mod:`strata.meta` only ``sqlite_url`` is needed."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from strata.storage.private import create_private_file

_MIGRATIONS = Path(__file__).parent / "migrations"
#: SQLite's page cache per connection, KiB (``PRAGMA cache_size=-N``; SQLite's default 2000).
#: A serving worker has several connections (the writer's, the reads' pool, the hot reader of
#: each thread) and every one filled its cache to the default whenever it scanned (garbage
#: collection reads whole tables): ~2 MiB each of malloc'd pages, freed again whenever another
#: process commits (WAL: the cache is reset) and left behind as heap fragments (issue #18: the
#: soak's growth). Indexed lookups touch a few pages; scans read on through the OS page cache.
CACHE_KIB = 512


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / 'strata.db'}"


def create_engine(url: str, *, readonly: bool = False) -> sa.Engine:
    """An engine whose SQLite connections use WAL and take the write lock up front; a new
    SQLite database file is created mode 0600 (and so are its ``-wal`` and ``-shm``).

    ``readonly``: nothing is created and nothing can be written (SQLite opened ``mode=ro``, so
    no checkpoint touches the file either; PostgreSQL sessions with
    ``default_transaction_read_only``), for the commands that only look (``strata scrub``,
    ``strata gc --dry-run``).

    SQLite transactions start with ``BEGIN IMMEDIATE`` so that two processes writing at once
    queue on the busy timeout instead of failing to upgrade a read lock; transactions opened
    with ``execution_options(readonly=True)`` use a plain deferred ``BEGIN``.
    """
    if not url.startswith("sqlite"):
        ro: dict[str, Any] = {"connect_args": {
            "options": "-c default_transaction_read_only=on"}} if readonly else {}
        return sa.create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20, **ro)
    if readonly:
        path = sa.make_url(url).database
        if not path or path == ":memory:":
            raise ValueError("a read-only SQLite database must be a file")
        url = f"sqlite:///file:{path}?mode=ro&uri=true"
    engine = sa.create_engine(url, connect_args={"timeout": 60, "isolation_level": None})
    database = engine.url.database
    if not readonly and database and database != ":memory:" and Path(database).parent.is_dir():
        # Owner-only whatever the umask; SQLite gives its -wal and -shm files the mode of
        # the database file.
        create_private_file(Path(database))

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        reading = readonly or conn.get_execution_options().get("readonly", False)
        conn.exec_driver_sql("BEGIN" if reading else "BEGIN IMMEDIATE")

    return engine


@contextlib.contextmanager
def locked_begin(engine: sa.Engine, *, durable: bool = True,
                 sync: bool = True) -> Iterator[sa.Connection]:
    """A write transaction; on a SQLite file, under an exclusive ``flock`` beside the database.

    Every writer of the data dir (all worker processes, ``strata gc``) takes it, so writers
    queue in the kernel and wake the moment it is free rather than polling SQLite's busy
    handler; garbage collection relies on it too (see ``RegistryStore.finish_upload``).

    The commit itself does not wait for the disk (SQLite ``synchronous=NORMAL``): the WAL of a
    ``durable`` transaction is fdatasynced right after the lock is released (:func:`sync_wal`),
    so the next writer, of this process or another, need not wait for that fsync. With
    ``sync=False`` the caller does it, before telling anyone the transaction is stored (the
    group writer syncs once for every commit made meanwhile). ``durable=False``: no sync at all
    (the WAL reaches the disk with the next durable commit or checkpoint); a process crash
    loses nothing either way, a power loss may lose such a commit, so it is only for state that
    may safely fall back, such as an upload's offset (the client resumes from the older one).
    """
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:":
        with engine.begin() as conn:
            yield conn
        return
    fd = os.open(f"{database}.writelock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with engine.connect() as conn:
            _pragma(conn, "synchronous=NORMAL")
            try:
                with conn.begin():
                    yield conn
            finally:
                # back to the pool as it came (FULL), whatever else uses the connection
                _pragma(conn, "synchronous=FULL")
    finally:
        os.close(fd)  # closing releases the lock
    if durable and sync:
        sync_wal(engine)


def sync_wal(engine: sa.Engine) -> None:
    """Make every transaction committed so far on a SQLite file durable: fdatasync its WAL.

    Safe after a ``synchronous=NORMAL`` commit: the WAL is written in order, so the sync
    covers this commit and every one before it, and frames a checkpoint copied into the
    database file and then reused were synced by that checkpoint (SQLite syncs the WAL before
    a checkpoint and the database file after it). No WAL file (the last connection closed and
    checkpointed it away): the database file is synced instead."""
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:":
        return
    for path in (f"{database}-wal", database):
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            os.fdatasync(fd)
        finally:
            os.close(fd)
        return


def _pragma(conn: sa.Connection, setting: str) -> Any:
    # On the driver connection, outside any transaction (SQLAlchemy would begin one).
    raw = conn.connection.driver_connection
    assert raw is not None
    return raw.execute(f"PRAGMA {setting}").fetchone()


def migrate(engine: sa.Engine) -> None:
    """Bring the schema to the newest revision of every branch (idempotent)."""
    # alembic (and mako) only where a schema is migrated or checked: ~10 MiB a serving
    # worker never needs (bench/memory.py).
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "heads")


def schema_state(engine: sa.Engine) -> tuple[bool, bool, bool]:
    """``(strata, current, known)``: whether the database holds a strata schema at all
    (nothing is created by looking), whether every revision of every branch is applied, and
    whether every applied revision is one this strata knows (False: a newer strata wrote it)."""
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    script = ScriptDirectory.from_config(cfg)
    with engine.connect() as conn:
        applied = tuple(MigrationContext.configure(conn).get_current_heads())
    known = {r.revision for r in script.walk_revisions()}
    if not applied or not set(applied) <= known:
        return bool(applied), False, not applied
    done = {r.revision for r in script.revision_map.iterate_revisions(applied, "base")
            if r is not None}
    return True, known <= done, True
