"""``strata init``: create a data dir (and its database), or bring an existing one's schema up
to date. The offline commands (``user``, ``robot``, ``auth``, ``gc``, ``scrub``) refuse a place
that holds no strata data; this command and ``strata serve`` are the ones that make it."""

from __future__ import annotations

from pathlib import Path

import click

from strata.cli.common import blob_store_option, data_option, database_option, fail
from strata.compose import build_store, metadata_database, prepare
from strata.config import ServerSettings
from strata.meta.errors import DatabaseUnavailable


@click.command()
@data_option
@database_option
@blob_store_option
def init(data_dir: Path, database_url: str | None, blob_store: str | None) -> None:
    """Create the data dir and database (owner-only), or upgrade an existing one's schema."""
    settings = ServerSettings(data_dir=data_dir.resolve(), database_url=database_url,
                              blob_store=blob_store)
    try:
        prepare(settings)
        db = metadata_database(settings)
    except DatabaseUnavailable as exc:
        fail(f"cannot open the database: {exc.detail}")
        return
    try:
        url = db.url
    finally:
        db.close()
    if blob_store is None:
        build_store(settings)  # blobs/ and uploads/ in the data dir
    click.echo(f"strata: data dir {settings.data_dir}, database {url}: schema up to date",
               err=True)
