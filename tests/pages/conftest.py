"""Catalog fixtures: the app in-process with the release API (and so the pages), open
(no authentication) unless a test builds it with an ``AuthService``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from strata.meta.connection import create_engine, migrate, sqlite_url
from strata.meta.database import Database
from strata.meta.registry_store import RegistryStore
from strata.registry.service import Registry
from strata.release.engine import ReleaseEngine
from strata.release.policy import ReleaseTagPolicy
from strata.release.webhooks import RetryPolicy, WebhookSecurity
from strata.server.api import ReleaseApi
from strata.server.app import create_app
from strata.server.urls import PublicUrl
from strata.storage.filesystem import FilesystemBlobStore
from support.clock import SettableClock
from support.release import release_engine, webhook_sender

from .helpers import Client

START = dt.datetime(2025, 6, 2, 9, 0, tzinfo=dt.UTC).timestamp()


@pytest.fixture
def clock() -> SettableClock:
    return SettableClock(START)


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
def engine(db: sa.Engine, registry: Registry, clock: SettableClock) -> ReleaseEngine:
    return release_engine(db, registry, public_host="registry.example", clock=clock,
                          webhook_security=WebhookSecurity.ephemeral(allow_private=True))


@pytest.fixture
def make_client(aiohttp_client: Callable[..., Awaitable[Client]], registry: Registry,
                engine: ReleaseEngine, db: sa.Engine) -> Callable[..., Awaitable[Client]]:
    async def make(**kw: Any) -> Client:
        sender = webhook_sender(db, policy=RetryPolicy(base_delay=0.05, timeout=5),
                                security=engine.webhook_security)
        api = ReleaseApi(engine, sender, scheduler_interval=0, webhook_interval=0)
        kw.setdefault("public_url", PublicUrl.parse("https://registry.example"))
        return await aiohttp_client(create_app(registry, housekeeping_interval=0, release=api,
                                               **kw))
    return make


@pytest.fixture
async def client(make_client: Callable[..., Awaitable[Client]]) -> Client:
    return await make_client()
