"""Conventions every command follows.

Commands that act on a running server take ``--url`` (default ``$STRATA_URL``, else
``http://127.0.0.1:5000``) and credentials from ``$STRATA_USER`` / ``$STRATA_PASSWORD``;
offline tools take ``--data DIR``; ``--json`` gives machine-readable output; errors go to stderr
with a non-zero exit.

Every command module imports this one, so it imports neither the database stack (SQLAlchemy,
Alembic, psycopg: :func:`open_database` does when called) nor aiohttp (:func:`run_remote`):
a client command such as ``strata build`` starts without them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from strata.config import default_url

if TYPE_CHECKING:
    from strata.meta.database import Database

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


def server_options(fn: F) -> F:
    fn = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")(fn)
    fn = click.option("--password", envvar="STRATA_PASSWORD", default=None, hidden=True)(fn)
    fn = click.option("--user", envvar="STRATA_USER", default=None,
                      help="User name (default $STRATA_USER).")(fn)
    fn = click.option("--url", default=default_url, show_default="$STRATA_URL or "
                      "http://127.0.0.1:5000", help="The strata server.")(fn)
    return fn


def data_option(fn: F) -> F:
    return click.option("--data", "data_dir", type=click.Path(path_type=Path),
                        default=lambda: os.environ.get("STRATA_DATA", "var"),
                        show_default="$STRATA_DATA or ./var", help="Data directory.")(fn)


def store_options(fn: F) -> F:
    """``--data``, ``--database-url`` and ``--blob-store``: the stores an offline command
    (gc, scrub) works on, as ``strata serve`` is given them."""
    return data_option(database_option(blob_store_option(fn)))


def database_option(fn: F) -> F:
    return click.option("--database-url", envvar="STRATA_DATABASE_URL", default=None,
                        help="SQLAlchemy URL of the metadata database (default: SQLite in "
                             "--data).")(fn)


def secret_key_option(fn: F) -> F:
    """``--secret-key-file``: the server's secret key, which seals the token-signing keys and
    webhook secrets in the database; every node of a cluster is given the same file."""
    return click.option(
        "--secret-key-file", envvar="STRATA_SECRET_KEY_FILE", default=None,
        type=click.Path(dir_okay=False, path_type=Path),
        help="The server's secret key (the same file on every node; make one with "
             "'strata auth new-secret-key FILE'). Default: DATA/auth/webhook-key, created on "
             "first start.")(fn)


INIT_HINT = "'strata init --data DIR' (or the first 'strata serve') creates one"


@contextlib.contextmanager
def open_database(data_dir: Path, database_url: str | None, *, readonly: bool = False,
                  blob_store: str | None = None, blobs: bool = False) -> Iterator[Database]:
    """The metadata database an offline command works on (``--database-url``, else SQLite in
    ``--data``): one per command, handed to every store it uses, closed at the end.

    It never acts on the wrong place: a data dir (or database) that holds no strata data is
    refused with nothing created, and a line on stderr says which one the command acts on.
    ``blobs``: the command also reads the blob files of the data dir (unless ``blob_store``
    names a bucket). An older schema is brought up to date, unless ``readonly`` (``scrub``,
    ``gc --dry-run``: the database is opened read-only and never migrated; they refuse it)."""
    from strata.meta.connection import sqlite_url
    from strata.meta.database import Database
    from strata.meta.errors import DatabaseUnavailable

    data_dir = data_dir.resolve()
    if database_url is None and not (data_dir / "strata.db").is_file():
        fail(f"no strata data in {data_dir} (no strata.db): check --data or $STRATA_DATA; "
             f"{INIT_HINT}")
    if blobs and blob_store is None and not (data_dir / "blobs").is_dir():
        fail(f"no strata blobs in {data_dir} (no blobs/ directory): check --data or "
             "$STRATA_DATA, or give --blob-store")
    try:
        db = Database(database_url or sqlite_url(data_dir), readonly=readonly)
    except DatabaseUnavailable as exc:
        fail(f"cannot open the database: {exc.detail}")
        raise AssertionError("unreachable") from None
    try:
        where = f"data dir {data_dir}, database {db.url}" + (
            f", blobs {blob_store.split('?', 1)[0]}" if blobs and blob_store else "")
        click.echo(f"strata: acting on {where}", err=True)
        try:
            strata, current, known = db.schema()
        except DatabaseUnavailable as exc:
            fail(f"cannot open the database: {exc.detail}")
        if not strata:
            fail(f"no strata data in {db.url} (no strata schema): check --data / "
                 f"--database-url; {INIT_HINT}")
        if not known:
            fail(f"{db.url} was written by a newer strata (a schema this one does not know); "
                 "use that version")
        if not current:
            if readonly:
                fail(f"the schema of {db.url} is older than this strata's: run 'strata init' "
                     "(or start 'strata serve') on it first")
            db.migrate()
        yield db
    finally:
        db.close()


def blob_store_option(fn: F) -> F:
    return click.option(
        "--blob-store", envvar="STRATA_BLOB_STORE", default=None,
        help="Where blobs live: files in --data (default) or "
             "s3://BUCKET/PREFIX?endpoint=URL&region=R (S3-compatible; credentials from "
             "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY).")(fn)


def emit(data: Any, as_json: bool, text: Callable[[Any], str]) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True))
    else:
        click.echo(text(data))


def fail(message: str, code: int = 1) -> None:
    click.echo(f"strata: error: {message}", err=True)
    sys.exit(code)


def run_remote(url: str, go: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run one async conversation with the server at ``url``; its failures end the command
    with a message on stderr."""
    import aiohttp

    from strata.client.registry import ClientError

    try:
        return asyncio.run(go())
    except ClientError as exc:
        fail(str(exc))
    except aiohttp.ClientError as exc:
        fail(f"cannot reach {url}: {exc}")
    raise AssertionError("unreachable")
