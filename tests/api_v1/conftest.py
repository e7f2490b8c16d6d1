"""The /api/v1 tier: the app ``strata serve`` serves (:func:`strata.server.runner.worker_app`)
on a data dir prepared as ``strata serve`` prepares it, in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from strata.compose import metadata_database
from strata.config import ServerSettings
from strata.server.auth_setup import prepare_auth, prepare_webhook_key
from strata.server.runner import worker_app

Client = TestClient[web.Request, web.Application]
ADMIN_PASSWORD = "openapi-admin-password"
ADMIN = {"Authorization": aiohttp.encode_basic_auth("admin", ADMIN_PASSWORD)}


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerSettings]:
    """A data dir prepared as ``strata serve`` prepares it (schema, keys, the admin), once
    per module (the admin's password hash is slow on purpose)."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("STRATA_ADMIN_PASSWORD", ADMIN_PASSWORD)
        env.setenv("STRATA_SCHEDULER_INTERVAL", "0")
        env.setenv("STRATA_WEBHOOK_INTERVAL", "0")
        data = tmp_path_factory.mktemp("openapi") / "data"
        data.mkdir(mode=0o700)
        out = ServerSettings(data_dir=data, housekeeping_interval=0, gc_interval=0,
                             build_concurrency=0)
        db = metadata_database(out)
        try:
            db.migrate()
        finally:
            db.close()
        prepare_webhook_key(out)
        prepare_auth(out)
        yield out


@pytest.fixture
def app(settings: ServerSettings) -> web.Application:
    return worker_app(settings)


@pytest.fixture
async def client(app: web.Application,
                 aiohttp_client: Callable[..., Awaitable[Client]]) -> AsyncIterator[Client]:
    yield await aiohttp_client(app)


