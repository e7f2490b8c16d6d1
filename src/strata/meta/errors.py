"""What the metadata layer tells its callers when the database refuses a write."""

from __future__ import annotations

import sqlite3
import sys

import sqlalchemy as sa


class Conflict(Exception):
    """A write lost a uniqueness race (the database's integrity error, in the project's own
    terms): another transaction inserted the same key first. Callers map it to their domain
    answer (the registry and the release engine: ``Code.CONFLICT``, "try again").

    ``detail`` is the driver's message, cut to 300 characters (for logs and error details).
    """

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail[:300]


def unavailable(exc: BaseException) -> str | None:
    """Why the database could not serve a statement, when ``exc`` says it was unreachable or
    full rather than refusing the statement (a restart, a dropped connection, a full disk):
    "disk full" or "unreachable"; None for anything else (a bug stays a 500). Raw driver
    errors count too: hot reads run on the driver's connection."""
    orig = exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return "unreachable"
    text = str(orig).lower()
    # psycopg is imported by the PostgreSQL engine only (~9 MiB a SQLite server never
    # loads): an error can be one of its classes only once it is imported.
    psycopg = sys.modules.get("psycopg")
    pg_down: tuple[type[BaseException], ...] = (
        () if psycopg is None else (psycopg.OperationalError, psycopg.InterfaceError))
    if isinstance(orig, (sqlite3.OperationalError, *pg_down[:1])) and (
            "disk is full" in text or "no space left" in text):
        return "disk full"
    if isinstance(orig, pg_down):
        return "unreachable"
    if isinstance(orig, sqlite3.OperationalError) and ("locked" in text
                                                        or "unable to open" in text):
        return "unreachable"
    return None


class DatabaseUnavailable(Exception):
    """The database cannot be opened: a malformed URL, a server that does not answer or
    refuses the login, a file that cannot be read. ``detail`` is one line for the operator
    (the driver's first line, no password)."""

    def __init__(self, detail: str) -> None:
        first = (detail.strip().splitlines() or ["unknown error"])[0]
        super().__init__(first[:300])
        self.detail = first[:300]
