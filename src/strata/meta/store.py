"""Deprecated (issue 13): :class:`strata.meta.registry_store.RegistryStore` on a shared
:class:`strata.meta.database.Database`. Kept until every caller has moved."""

from __future__ import annotations

import time
from collections.abc import Callable

import sqlalchemy as sa

from strata.meta.database import Database
from strata.meta.registry_store import RegistryStore


class SqlMetaStore(RegistryStore):
    """A ``RegistryStore`` on a ``Database`` of its own over ``engine``."""

    def __init__(self, engine: sa.Engine, *, clock: Callable[[], float] = time.time,
                 touch_interval: float = 300.0) -> None:
        super().__init__(Database(engine, clock=clock), touch_interval=touch_interval)

    def close(self) -> None:
        self.database.close()
