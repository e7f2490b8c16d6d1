"""Running the release engine's SQL off the event loop, one transaction per call."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable
from typing import TypeVar

import sqlalchemy as sa

from strata.errors import Code, RegistryError
from strata.meta.connection import locked_begin

T = TypeVar("T")


class Database:
    """A SQLAlchemy engine plus a clock; ``read``/``write`` run ``fn(conn)`` in a thread.

    Transactions run on a worker thread (not inline, as the registry's short ones do) because a
    publish may write many tags and may wait for the data dir's write lock (``locked_begin``,
    which every writer takes).
    """

    def __init__(self, engine: sa.Engine, *, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.clock = clock

    def now(self) -> float:
        return self.clock()

    def today(self) -> dt.date:
        return dt.datetime.fromtimestamp(self.clock(), dt.UTC).date()

    def read_sync(self, fn: Callable[[sa.Connection], T]) -> T:
        with self.engine.connect().execution_options(readonly=True) as conn, conn.begin():
            return fn(conn)

    def write_sync(self, fn: Callable[[sa.Connection], T]) -> T:
        """``fn`` in one write transaction; a uniqueness race becomes a CONFLICT."""
        try:
            with locked_begin(self.engine) as conn:
                return fn(conn)
        except sa.exc.IntegrityError as exc:
            raise RegistryError(Code.CONFLICT, str(exc.orig)[:300],
                                message="a concurrent change conflicts; try again") from None

    async def read(self, fn: Callable[[sa.Connection], T]) -> T:
        return await asyncio.to_thread(self.read_sync, fn)

    async def write(self, fn: Callable[[sa.Connection], T]) -> T:
        return await asyncio.to_thread(self.write_sync, fn)
