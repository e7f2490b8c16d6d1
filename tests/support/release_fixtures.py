"""The release tiers' base fixtures (tests/release, tests/trust, tests/pages): a fake clock
on a Monday, a migrated metadata database and a registry with the stream policy over it.

A conftest registers them by importing them::

    from support.release_fixtures import START, clock, db, registry  # noqa: F401

``db`` is SQLite in the test's temp dir; parametrized indirectly with ``"postgres"``
(``pytest.mark.parametrize("db", ["sqlite", "postgres"], indirect=True)``) it is a fresh
database on the session's PostgreSQL cluster.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from strata.meta.connection import create_engine, migrate, sqlite_url
from strata.meta.database import Database
from strata.meta.registry_store import RegistryStore
from strata.registry.service import Registry
from strata.release.policy import ReleaseTagPolicy
from strata.storage.filesystem import FilesystemBlobStore
from support.clock import SettableClock
from support.postgres import PostgresCluster

__all__ = ["START", "clock", "db", "registry"]

START = dt.datetime(2025, 6, 2, 9, 0, tzinfo=dt.UTC).timestamp()  # a Monday


@pytest.fixture
def clock() -> SettableClock:
    return SettableClock(START)


@pytest.fixture
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    """SQLite in the test's temp dir; ``postgres`` (indirect parametrization): a fresh database
    on the session's PostgreSQL cluster."""
    if getattr(request, "param", "sqlite") == "postgres":
        cluster: PostgresCluster = request.getfixturevalue("postgres")
        url = cluster.create_database(f"rel_{uuid.uuid4().hex[:12]}")
    else:
        url = sqlite_url(tmp_path)
    engine = create_engine(url)
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def registry(db: sa.Engine, tmp_path: Path) -> Registry:
    return Registry.build(RegistryStore(Database(db)), FilesystemBlobStore(tmp_path / "blobs"),
                          policy=ReleaseTagPolicy())
