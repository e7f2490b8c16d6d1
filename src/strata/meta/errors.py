"""What the metadata layer tells its callers when the database refuses a write."""

from __future__ import annotations

import sqlite3

import psycopg
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
    if isinstance(orig, sqlite3.OperationalError | psycopg.OperationalError) and (
            "disk is full" in text or "no space left" in text):
        return "disk full"
    if isinstance(orig, psycopg.OperationalError | psycopg.InterfaceError):
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
