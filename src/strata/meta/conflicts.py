"""Statements for writers that may race each other on PostgreSQL.

On SQLite every write of a data dir is serialized (``connection.locked_begin``), so "look, then
insert if missing" is safe. On PostgreSQL each write is its own READ COMMITTED transaction:
two of them may both find a row missing and both insert it, and the loser's plain INSERT fails
with a unique violation that aborts its whole transaction (a push answered 500). The helpers
here say what to do instead, in SQL both databases accept, so there is still one code path.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


def insert_new(table: sa.Table) -> postgresql.Insert:
    """``INSERT ... ON CONFLICT DO NOTHING``: insert the row unless it exists.

    On PostgreSQL an insert that meets a row being inserted by another transaction waits for
    it; if that one commits, this inserts nothing (``rowcount`` 0) and the caller goes on with
    the row that now exists. SQLite (3.24+) takes the same clause; its writers never get there.
    The construct comes from the PostgreSQL dialect but renders the same standard clause on
    SQLite.
    """
    return postgresql.insert(table).on_conflict_do_nothing()
