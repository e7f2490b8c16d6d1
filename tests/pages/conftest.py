"""Catalog fixtures: the app in-process with the release API (and so the pages), open
(no authentication) unless a test builds it with an ``AuthService``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher
from cryptography.hazmat.primitives.asymmetric import ec

from strata.auth.passwords import PasswordHashing
from strata.auth.policy import Role
from strata.auth.service import AuthService
from strata.meta.account_store import SqlAccountStore
from strata.meta.database import Database
from strata.registry.service import Registry
from strata.release.engine import ReleaseEngine
from strata.release.webhooks import RetryPolicy, WebhookSecurity
from strata.server.api import ReleaseApi
from strata.server.app import create_app
from strata.server.auth import TokenAuth
from strata.server.urls import PublicUrl
from strata.trust.keys import Passphrase
from strata.trust.signer import TrustSigner
from support import release_fixtures
from support.clock import SettableClock
from support.release import release_engine, webhook_sender

from .helpers import Client

# The release tiers' base fixtures (tests/support/release_fixtures.py).
START = release_fixtures.START
clock = release_fixtures.clock
db = release_fixtures.db
registry = release_fixtures.registry

PASSWORD = "pages-correct-horse-battery"
BACKENDS = pytest.mark.parametrize("db", ["sqlite", "postgres"], indirect=True)
"""A test on both metadata databases (the catalog's queries are the store's, for both)."""


@pytest.fixture
def engine(db: sa.Engine, registry: Registry, clock: SettableClock) -> ReleaseEngine:
    signer = TrustSigner(registry, Passphrase(b"pages test passphrase"),
                         public_host="registry.example")
    return release_engine(db, registry, public_host="registry.example", clock=clock,
                          webhook_security=WebhookSecurity.ephemeral(allow_private=True),
                          signer=signer)


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


@pytest.fixture
def make_auth(db: sa.Engine) -> Callable[..., TokenAuth]:
    """Token authentication over the fixture's database with one releng account ``rel``
    (password :data:`PASSWORD`) and a ``maint`` maintainer of ``f26/private``."""
    def make(public: Callable[[str], bool]) -> TokenAuth:
        hashing = PasswordHashing(PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
        service = AuthService(SqlAccountStore(Database(db)), hashing, public=public)
        service.add_user("rel", PASSWORD, Role.RELENG)
        service.add_user("maint", PASSWORD, Role.MAINTAINER, images=["f26/private"])
        return TokenAuth.create(service, ec.generate_private_key(ec.SECP256R1()))
    return make
