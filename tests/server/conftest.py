"""Server-tier fixtures: the metadata database a ``strata serve`` under test runs on."""

from __future__ import annotations

import itertools

import pytest

_names = itertools.count()


@pytest.fixture(params=["sqlite", "postgres"])
def database_args(request: pytest.FixtureRequest) -> list[str]:
    """Extra ``strata serve`` / ``strata gc`` arguments: none for SQLite in the data dir, or
    ``--database-url`` of a fresh database in the session's PostgreSQL cluster."""
    if request.param == "sqlite":
        return []
    cluster = request.getfixturevalue("postgres")
    return ["--database-url", cluster.create_database(f"server_{next(_names)}")]
