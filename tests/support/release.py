"""Building the release engine and the webhook sender on a test database (an SQLAlchemy
engine, as the fixtures make it): each on a :class:`Database` with the given clock."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from strata.meta.database import Database
from strata.meta.release_store import ReleaseStore
from strata.meta.webhook_store import WebhookStore
from strata.registry.service import Registry
from strata.release.engine import ReleaseEngine
from strata.release.webhooks import WebhookSender


def release_engine(db: sa.Engine, registry: Registry, *,
                   clock: Callable[[], float] = time.time, **options: Any) -> ReleaseEngine:
    database = Database(db, clock=clock)
    return ReleaseEngine(ReleaseStore(database), WebhookStore(database), registry, **options)


def webhook_sender(db: sa.Engine, *, clock: Callable[[], float] = time.time,
                   **options: Any) -> WebhookSender:
    return WebhookSender(WebhookStore(Database(db, clock=clock)), clock=clock, **options)


def webhook_store(db: sa.Engine) -> WebhookStore:
    return WebhookStore(Database(db))
