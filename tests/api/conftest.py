"""The api tier: the whole /v2/ surface, in-process, over a fresh SQLite DB and data dir."""

from __future__ import annotations

import os
import shutil
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp import web
from aiohttp.test_utils import TestClient

from strata.meta.connection import create_engine, sqlite_url
from strata.meta.database import Database
from strata.meta.registry_store import RegistryStore
from strata.registry.limits import Limits
from strata.registry.service import Registry
from strata.server.app import create_app
from strata.storage.filesystem import FilesystemBlobStore

Client = TestClient[web.Request, web.Application]
AppFactory = Callable[[], web.Application]
ClientFactory = Callable[..., Awaitable[Client]]


@pytest.fixture(autouse=True)
def _skip_fsync(monkeypatch: pytest.MonkeyPatch) -> None:
    """Durability is the server tier's subject (crash tests); here fsync only costs time."""
    monkeypatch.setattr(os, "fsync", lambda fd: None)


@pytest.fixture
def data_dir(tmp_path: Path, migrated_sqlite: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    shutil.copyfile(migrated_sqlite, data / "strata.db")
    return data


def _no_fsync(dbapi_conn: Any, _record: Any) -> None:
    """Durability is the server tier's subject; here it only costs fsync waits."""
    dbapi_conn.execute("PRAGMA synchronous=OFF")


@pytest.fixture
def make_app(data_dir: Path) -> Iterator[Callable[..., web.Application]]:
    """Build an app over ``data_dir`` (the same DB and blobs each time: a "restart")."""
    engines: list[sa.Engine] = []
    stores: list[Database] = []

    def build(limits: Limits | None = None) -> web.Application:
        engine = create_engine(sqlite_url(data_dir))
        sa.event.listen(engine, "connect", _no_fsync)
        engines.append(engine)
        stores.append(Database(engine))
        registry = Registry.build(RegistryStore(stores[-1]), FilesystemBlobStore(data_dir),
                                  limits=limits)
        return create_app(registry, housekeeping_interval=0)

    yield build
    for store in stores:
        store.close()
    for engine in engines:
        engine.dispose()


@pytest.fixture
async def client(aiohttp_client: ClientFactory,
                 make_app: Callable[..., web.Application]) -> Client:
    return await aiohttp_client(make_app())
