"""The one way to the database: ``Database`` owns the SQLAlchemy engine and every way to run
SQL on it.

- ``write`` / ``write_sync``: the one writer. A job ``job(conn, batch)`` runs in a write
  transaction; on SQLite jobs queued meanwhile share one commit (group commit, a SAVEPOINT per
  job, see :mod:`strata.meta.groupcommit`) under the data dir's write lock; on PostgreSQL each
  job is its own transaction on a worker thread. A uniqueness race becomes
  :class:`strata.meta.errors.Conflict`.
- ``read`` / ``read_sync``: ``fn(conn)`` in a read-only transaction (``read``: on a thread).
- ``compiled`` + ``fetch_one`` / ``fetch_all``: the hot reads, compiled once and run on the
  driver (on SQLite inline, on a reader connection of the calling thread; on PostgreSQL on a
  worker thread), see :mod:`strata.meta.fastread`.
- ``offload``: the one way to run slow work on a thread.

Stores (one module per domain) are built on one ``Database`` each process shares; nothing
outside :mod:`strata.meta` sees a connection or a row.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable, Mapping
from typing import Any, ParamSpec, TypeVar

import sqlalchemy as sa

from strata.meta.connection import create_engine, migrate, schema_state
from strata.meta.errors import Conflict, DatabaseUnavailable
from strata.meta.fastread import CompiledSql, FastReader, prepared, run, run_many
from strata.meta.groupcommit import Batch, GroupWriter, Job

T = TypeVar("T")
P = ParamSpec("P")
Read = Callable[[sa.Connection], T]

# ``run(conn, build, **values)`` / ``run_many``: inside a write job, run a statement built by a
# module-level ``build()`` (compiled once per dialect) on the job's connection.
__all__ = ["Batch", "CompiledSql", "Conflict", "Database", "Job", "run", "run_many"]


class Database:
    """One database (SQLite file or PostgreSQL) and the injected clock of the stores on it."""

    def __init__(self, url_or_engine: str | sa.Engine, *,
                 clock: Callable[[], float] = time.time, max_batch: int = 64,
                 readonly: bool = False) -> None:
        if isinstance(url_or_engine, str):
            try:
                self._engine = create_engine(url_or_engine, readonly=readonly)
            except (sa.exc.ArgumentError, ImportError, ValueError) as exc:
                raise DatabaseUnavailable(f"bad database URL: {exc}") from None
            self._owned = True
        else:
            self._engine = url_or_engine
            self._owned = False
        self._clock = clock
        self._writer = GroupWriter(self._engine, max_batch=max_batch)
        self._reader = FastReader(self._engine)
        self._inline = self._engine.dialect.name == "sqlite"

    # -- what it is ---------------------------------------------------------------------------
    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return str(self._engine.dialect.name)

    @property
    def url(self) -> str:
        """The database URL with any password hidden (for logs); a SQLite file opened
        read-only is shown by its plain URL."""
        url = self._engine.url
        if url.get_backend_name() == "sqlite" and url.query.get("mode") == "ro":
            return f"sqlite:///{(url.database or '').removeprefix('file:')} (read-only)"
        return url.render_as_string(hide_password=True)

    @property
    def sa_engine(self) -> sa.Engine:
        """The SQLAlchemy engine, for :mod:`strata.meta` and tests only."""
        return self._engine

    @property
    def clock(self) -> Callable[[], float]:
        return self._clock

    def now(self) -> float:
        return self._clock()

    def today(self) -> dt.date:
        """Today's date (UTC) by the injected clock."""
        return dt.datetime.fromtimestamp(self._clock(), dt.UTC).date()

    @property
    def commits(self) -> int:
        """Write transactions committed by :meth:`write` so far (tests, metrics)."""
        return self._writer.commits

    @property
    def jobs(self) -> int:
        """Write jobs committed by :meth:`write` so far."""
        return self._writer.jobs

    # -- lifecycle ----------------------------------------------------------------------------
    def migrate(self) -> None:
        """Bring the schema to the newest revision of every branch (idempotent)."""
        try:
            migrate(self._engine)
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
            raise DatabaseUnavailable(f"{self.url}: {exc.orig or exc}") from None

    def schema(self) -> tuple[bool, bool, bool]:
        """``(strata, current, known)``, see :func:`strata.meta.connection.schema_state`."""
        try:
            return schema_state(self._engine)
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
            raise DatabaseUnavailable(f"{self.url}: {exc.orig or exc}") from None

    def close(self) -> None:
        """Stop the writer thread (jobs queued before are committed first); dispose of the
        engine if this object made it."""
        self._writer.close()
        if self._owned:
            self._engine.dispose()

    # -- writing ------------------------------------------------------------------------------
    async def write(self, job: Job[T], *, durable: bool = True,
                    prepare: Callable[[], None] | None = None) -> T:
        """``job(conn, batch)`` in a write transaction; its result once committed.

        ``durable=False``: the commit need not reach the disk before this returns (SQLite
        ``synchronous=NORMAL``), only for state that may safely fall back after a power loss.
        ``prepare``: blocking work done on a thread before the job is queued (see
        :meth:`GroupWriter.run`).
        """
        try:
            return await self._writer.run(job, durable=durable, prepare=prepare)
        except sa.exc.IntegrityError as exc:
            raise Conflict(str(exc.orig)) from None

    def write_sync(self, job: Job[T], *, durable: bool = True) -> T:
        """The same from a plain thread (offline commands, threads, tests): its own
        transaction, under the same write lock."""
        try:
            return self._writer.run_sync(job, durable=durable)
        except sa.exc.IntegrityError as exc:
            raise Conflict(str(exc.orig)) from None

    # -- reading ------------------------------------------------------------------------------
    def read_sync(self, fn: Read[T]) -> T:
        """``fn(conn)`` in a read-only transaction (one consistent snapshot)."""
        with self._engine.connect().execution_options(readonly=True) as conn, conn.begin():
            return fn(conn)

    async def read(self, fn: Read[T]) -> T:
        """:meth:`read_sync` on a worker thread."""
        return await asyncio.to_thread(self.read_sync, fn)

    def compiled(self, stmt: sa.ClauseElement) -> CompiledSql:
        """``stmt`` compiled once for this database's dialect (bind parameters by name)."""
        return CompiledSql(self._engine, stmt)

    def prepared(self, build: Callable[[], sa.ClauseElement]) -> CompiledSql:
        """The statement ``build()`` makes, compiled on first use and memoized per dialect
        (for module-level statement builders)."""
        return prepared(self._engine.dialect, build)

    def fetch_one_sync(self, query: CompiledSql,
                       params: Mapping[str, Any] | None = None) -> tuple[Any, ...] | None:
        """The first row of a hot read, on the calling thread (SQLite: its own reader
        connection, autocommit; PostgreSQL: a pooled connection)."""
        return self._reader.first_of(query, params or {})

    def fetch_all_sync(self, query: CompiledSql,
                       params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        return self._reader.all_of(query, params or {})

    async def fetch_one(self, query: CompiledSql,
                        params: Mapping[str, Any] | None = None) -> tuple[Any, ...] | None:
        """The first row of a hot read: inline on SQLite (microseconds, no thread hop), on a
        worker thread on PostgreSQL."""
        if self._inline:
            return self._reader.first_of(query, params or {})
        return await asyncio.to_thread(self._reader.first_of, query, params or {})

    async def fetch_all(self, query: CompiledSql,
                        params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        if self._inline:
            return self._reader.all_of(query, params or {})
        return await asyncio.to_thread(self._reader.all_of, query, params or {})

    # -- slow work ----------------------------------------------------------------------------
    async def offload(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(*args)`` on a worker thread: the one way to keep slow work (a sweep, many
        files, a long transaction) off the event loop."""
        return await asyncio.to_thread(fn, *args, **kwargs)
