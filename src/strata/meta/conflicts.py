"""Statements for writers that may race each other on PostgreSQL.

On SQLite every write of a data dir is serialized (``connection.locked_begin``), so "look, then
insert if missing" is safe. On PostgreSQL each write is its own READ COMMITTED transaction:
two of them may both find a row missing and both insert it, and the loser's plain INSERT fails
with a unique violation that aborts its whole transaction (a push answered 500). The helpers
here say what to do instead, in SQL both databases accept, so there is still one code path.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.base import SyntaxExtension
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.elements import ClauseElement


class DoNothingOnConflict(SyntaxExtension, ClauseElement):
    """``ON CONFLICT DO NOTHING`` after an INSERT's VALUES (and before any ``RETURNING``),
    rendered the same on both databases (no conflict target: none is needed). strata's own
    construct rather than the PostgreSQL dialect's ``insert``: importing
    ``sqlalchemy.dialects.postgresql`` brings every PostgreSQL driver's dialect module (~2 MiB
    in each serving process, on SQLite too; issue #18, peak PSS)."""

    __visit_name__ = "strata_do_nothing_on_conflict"
    inherit_cache = True
    _traverse_internals: list[Any] = []

    def apply_to_insert(self, insert_stmt: Insert) -> None:
        insert_stmt.apply_syntax_extension_point(
            lambda existing: [*existing, self], "post_values")


@compiles(DoNothingOnConflict)
def _do_nothing(_element: DoNothingOnConflict, _compiler: Any, **_kw: Any) -> str:
    return "ON CONFLICT DO NOTHING"


def insert_new(table: sa.Table) -> Insert:
    """``INSERT ... ON CONFLICT DO NOTHING``: insert the row unless it exists.

    On PostgreSQL an insert that meets a row being inserted by another transaction waits for
    it; if that one commits, this inserts nothing (``rowcount`` 0) and the caller goes on with
    the row that now exists. SQLite (3.24+) takes the same clause; its writers never get there.
    Not for ``INSERT ... SELECT`` (SQLite would read the clause as the SELECT's).
    """
    return sa.insert(table).ext(DoNothingOnConflict())
