"""Hot read queries compiled once and run on the DBAPI connection directly.

A manifest or blob lookup is one indexed SELECT that SQLite answers in ~10 µs; building and
executing it through SQLAlchemy's expression layer costs ~150 µs more, which would dominate a
pull. The statements are still written with SQLAlchemy Core (one schema, both dialects); they
are compiled once per dialect and executed with the driver's own parameter style.

On SQLite each store keeps one reader connection of its own (autocommit: each SELECT is its
own consistent snapshot), used only from the event loop thread. On PostgreSQL a pooled
connection is taken per call (the call runs on a worker thread).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from strata.meta.connection import CACHE_KIB


class CompiledSql:
    """A statement (select, insert, update, delete) compiled once for the engine's dialect."""

    def __init__(self, engine: sa.Engine | sa.Dialect, stmt: sa.ClauseElement) -> None:
        dialect = engine.dialect if isinstance(engine, sa.Engine) else engine
        compiled = stmt.compile(dialect=dialect)
        self.sql = str(compiled)
        self._order: Sequence[str] | None = getattr(compiled, "positiontup", None)
        # Parameters the statement carries a value for (SQLite renders ``LIMIT ? OFFSET ?``
        # with an offset of 0): given unless the caller names them.
        binds = compiled.binds  # type: ignore[attr-defined]
        self._defaults = {name: bind.value for name, bind in binds.items()
                          if not bind.required and name in compiled.params}

    def params(self, values: Mapping[str, Any]) -> Sequence[Any] | Mapping[str, Any]:
        if self._defaults:
            values = {**self._defaults, **values}
        if self._order is not None:
            return tuple(values[name] for name in self._order)
        return values


class FastReader:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self._sqlite_path = engine.url.database if engine.dialect.name == "sqlite" else None
        self._local = threading.local()

    def _sqlite(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            assert self._sqlite_path is not None
            conn = sqlite3.connect(self._sqlite_path, isolation_level=None, timeout=60)
            conn.execute("PRAGMA busy_timeout=60000")
            conn.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
            self._local.conn = conn
        return conn

    def all(self, query: CompiledSql, **values: Any) -> list[tuple[Any, ...]]:
        return self.all_of(query, values)

    def first(self, query: CompiledSql, **values: Any) -> tuple[Any, ...] | None:
        return self.first_of(query, values)

    def all_of(self, query: CompiledSql, values: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Every row of ``query`` with the bind parameters ``values``."""
        if self._sqlite_path is not None:
            rows: list[tuple[Any, ...]] = self._sqlite().execute(
                query.sql, query.params(values)).fetchall()
            return rows
        raw = self.engine.raw_connection()
        try:
            cur = raw.cursor()
            cur.execute(query.sql, query.params(values))
            result = [tuple(r) for r in cur.fetchall()]
            cur.close()
            raw.rollback()
            return result
        finally:
            raw.close()

    def first_of(self, query: CompiledSql, values: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """The first row of ``query`` with the bind parameters ``values`` (a mapping, passed
        on as it is: the hot path builds no keyword arguments)."""
        if self._sqlite_path is not None:
            row: tuple[Any, ...] | None = self._sqlite().execute(
                query.sql, query.params(values)).fetchone()
            return row
        raw = self.engine.raw_connection()
        try:
            cur = raw.cursor()
            cur.execute(query.sql, query.params(values))
            result = cur.fetchone()
            cur.close()
            raw.rollback()
            return None if result is None else tuple(result)
        finally:
            raw.close()

def run_in(conn: sa.Connection, query: CompiledSql, **values: Any) -> Any:
    """Execute a compiled statement on the DBAPI connection under ``conn``'s transaction;
    returns the DBAPI cursor (``rowcount``, ``fetchone``)."""
    raw = conn.connection.driver_connection
    assert raw is not None
    cur = raw.cursor()
    params = query.params(values)
    if conn.dispatch.before_cursor_execute:
        _announce(conn, cur, query.sql, params, False)
    cur.execute(query.sql, params)
    return cur


def _announce(conn: sa.Connection, cursor: Any, sql: str, params: Any, many: bool) -> None:
    """Tell the engine's ``before_cursor_execute`` listeners (instrumentation, tests that stop
    a transaction at a statement) about a statement run on the driver; they see it as they
    would through SQLAlchemy, but cannot rewrite it."""
    for listener in conn.dispatch.before_cursor_execute:
        listener(conn, cursor, sql, params, None, many)


# Statements built by module-level functions, compiled once per dialect on first use. The memo
# holds SQL text only (a pure function of the builder and the dialect), like SQLAlchemy's own
# compiled cache, minus the per-call statement construction and cache-key work.
_PREPARED: dict[tuple[str, Callable[[], sa.ClauseElement]], CompiledSql] = {}


def prepared(conn: sa.Connection | sa.Dialect,
             build: Callable[[], sa.ClauseElement]) -> CompiledSql:
    dialect = conn.dialect if isinstance(conn, sa.Connection) else conn
    key = (dialect.name, build)
    sql = _PREPARED.get(key)
    if sql is None:
        sql = _PREPARED[key] = CompiledSql(dialect, build())
    return sql


def run(conn: sa.Connection, build: Callable[[], sa.ClauseElement], **values: Any) -> Any:
    """``run_in`` for a statement built by ``build`` (compiled on first use)."""
    return run_in(conn, prepared(conn, build), **values)


def run_many(conn: sa.Connection, build: Callable[[], sa.ClauseElement],
             rows: Sequence[Mapping[str, Any]]) -> None:
    """Execute ``build``'s statement once per row (DBAPI ``executemany``)."""
    sql = prepared(conn, build)
    raw = conn.connection.driver_connection
    assert raw is not None
    cur = raw.cursor()
    params = [sql.params(row) for row in rows]
    if conn.dispatch.before_cursor_execute:
        _announce(conn, cur, sql.sql, params, True)
    cur.executemany(sql.sql, params)
