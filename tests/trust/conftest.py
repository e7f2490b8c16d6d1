"""Trust fixtures: the release fixtures (migrated SQLite, registry with the stream policy, fake
clock) with a signer holding a test passphrase."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from strata.meta.database import Database
from strata.meta.key_store import KeyStore
from strata.registry.service import Registry
from strata.release.engine import ReleaseEngine
from strata.trust.keys import Passphrase
from strata.trust.service import TrustService
from strata.trust.signer import TrustSigner
from support import release_fixtures
from support.clock import SettableClock as Clock
from support.release import release_engine

# The release tiers' base fixtures (tests/support/release_fixtures.py).
START = release_fixtures.START
clock = release_fixtures.clock
db = release_fixtures.db
registry = release_fixtures.registry

HOST = "registry.example"
PASSPHRASE = Passphrase(b"correct horse battery staple")


@pytest.fixture
def signer(registry: Registry, db: sa.Engine, clock: Clock) -> TrustSigner:
    return TrustSigner(registry, PASSPHRASE, public_host=HOST,
                       store=KeyStore(Database(db, clock=clock)))


@pytest.fixture
def engine(db: sa.Engine, registry: Registry, clock: Clock,
           signer: TrustSigner) -> ReleaseEngine:
    return release_engine(db, registry, public_host=HOST, clock=clock, signer=signer)


@pytest.fixture
def trust(db: sa.Engine, clock: Clock, signer: TrustSigner) -> TrustService:
    return TrustService(KeyStore(Database(db, clock=clock)), signer)


# The API tier's accounts and app (admin, releng, maint of f25/cockpit, ...), for
# test_signature_rules.py: its fixtures, registered here too.
from auth.conftest import auth_template, make_env, signing_key  # noqa: E402, F401
