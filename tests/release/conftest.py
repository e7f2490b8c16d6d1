"""Release engine fixtures: a migrated SQLite database, a registry with the stream policy, an
engine on a fake clock."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from strata.meta.connection import create_engine, migrate, sqlite_url
from strata.meta.database import Database
from strata.meta.registry_store import RegistryStore
from strata.registry.service import Registry
from strata.release.engine import ReleaseEngine
from strata.release.policy import ReleaseTagPolicy
from strata.release.webhooks import WebhookSecurity
from strata.storage.filesystem import FilesystemBlobStore
from support.clock import SettableClock as Clock
from support.release import release_engine

START = dt.datetime(2025, 6, 2, 9, 0, tzinfo=dt.UTC).timestamp()  # a Monday


@pytest.fixture
def clock() -> Clock:
    return Clock(START)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[sa.Engine]:
    engine = create_engine(sqlite_url(tmp_path))
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def registry(db: sa.Engine, tmp_path: Path) -> Registry:
    return Registry.build(RegistryStore(Database(db)), FilesystemBlobStore(tmp_path / "blobs"),
                          policy=ReleaseTagPolicy())


@pytest.fixture
def engine(db: sa.Engine, registry: Registry, clock: Clock) -> ReleaseEngine:
    # Test receivers listen on loopback: deliveries there are allowed (as with
    # ``strata serve --webhook-allow-private``); tests/release/test_webhook_security.py checks
    # the default refusal.
    return release_engine(db, registry, public_host="registry.example", clock=clock,
                         webhook_security=WebhookSecurity.ephemeral(allow_private=True))
