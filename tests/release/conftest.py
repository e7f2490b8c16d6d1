"""Release engine fixtures: a migrated SQLite database, a registry with the stream policy, an
engine on a fake clock."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from strata.registry.service import Registry
from strata.release.engine import ReleaseEngine
from strata.release.webhooks import WebhookSecurity
from support import release_fixtures
from support.clock import SettableClock as Clock
from support.release import release_engine

# The release tiers' base fixtures (tests/support/release_fixtures.py).
START = release_fixtures.START
clock = release_fixtures.clock
db = release_fixtures.db
registry = release_fixtures.registry


@pytest.fixture
def engine(db: sa.Engine, registry: Registry, clock: Clock) -> ReleaseEngine:
    # Test receivers listen on loopback: deliveries there are allowed (as with
    # ``strata serve --webhook-allow-private``); tests/release/test_webhook_security.py checks
    # the default refusal.
    return release_engine(db, registry, public_host="registry.example", clock=clock,
                         webhook_security=WebhookSecurity.ephemeral(allow_private=True))
