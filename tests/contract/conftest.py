"""The contract tier: one MetaStore suite, run on SQLite and on a real PostgreSQL.

``RegistryStore`` promises one code path for both databases; these fixtures make every test of
this directory run once per backend (the ``meta`` fixture, parametrized over ``backend``).

- PostgreSQL: one throwaway cluster per session (the ``postgres`` fixture of
  ``tests/conftest.py``, ``tests/support/postgres.py``), one migrated
  template database, and a fresh copy of it per test (``CREATE DATABASE ... TEMPLATE``, ~80 ms),
  dropped afterwards. If the cluster cannot start, the postgres half of the tier fails with the
  reason; it is never skipped.
- SQLite: one migrated file per session, copied per test (as ``tests/api`` does).

The cluster is started only when a postgres test runs, so ``-k sqlite`` needs no PostgreSQL.
"""

from __future__ import annotations

import itertools
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from strata.meta.connection import create_engine, migrate, sqlite_url
from strata.meta.database import Database
from strata.meta.gc_store import SqlGarbageStore
from strata.meta.registry_store import RegistryStore
from support.clock import SettableClock as Clock
from support.postgres import PostgresCluster

BACKENDS = ["sqlite", "postgres"]
_TEMPLATE = "strata_template"
_names = itertools.count()


@pytest.fixture(scope="session")
def postgres_template_url(postgres: PostgresCluster) -> str:
    """The URL of a database migrated once; each test gets a copy of it."""
    url = postgres.create_database(_TEMPLATE)
    engine = create_engine(url)
    try:
        migrate(engine)
    finally:
        engine.dispose()  # a template must have no connections when it is copied
    return url


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A freshly migrated, empty database of ``backend`` for this test."""
    if backend == "sqlite":
        template: Path = request.getfixturevalue("migrated_sqlite")
        data = tmp_path / "db"
        data.mkdir()
        shutil.copyfile(template, data / "strata.db")
        yield sqlite_url(data)
        return
    request.getfixturevalue("postgres_template_url")
    cluster: PostgresCluster = request.getfixturevalue("postgres")
    name = f"t{next(_names)}"
    url = cluster.create_database(name, template=_TEMPLATE)
    try:
        yield url
    finally:
        cluster.drop_database(name)


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    engine = create_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock(time.time())


@pytest.fixture
def meta(database: Database) -> RegistryStore:
    return RegistryStore(database, touch_interval=60.0)


@pytest.fixture
def database(engine: sa.Engine, clock: Clock) -> Iterator[Database]:
    db = Database(engine, clock=clock)
    yield db
    db.close()


@pytest.fixture
def garbage(database: Database) -> SqlGarbageStore:
    return SqlGarbageStore(database)
