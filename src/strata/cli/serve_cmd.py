"""``strata serve``."""

from __future__ import annotations

from pathlib import Path

import click

from strata.cli.common import data_option
from strata.config import Listen, ServerSettings
from strata.server.runner import serve as run_server


@click.command()
@data_option
@click.option("--listen", default="127.0.0.1:5000", show_default=True,
              help="HOST:PORT to listen on.")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Worker processes sharing the port (SO_REUSEPORT).")
@click.option("--database-url", envvar="STRATA_DATABASE_URL", default=None,
              help="SQLAlchemy URL of the metadata database (default: SQLite in --data).")
def serve(data_dir: Path, listen: str, workers: int, database_url: str | None) -> None:
    """Serve the registry (OCI Distribution v1.1 at /v2/)."""
    try:
        address = Listen.parse(listen)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--listen") from None
    run_server(ServerSettings(data_dir=data_dir.resolve(), listen=address, workers=workers,
                              database_url=database_url))
