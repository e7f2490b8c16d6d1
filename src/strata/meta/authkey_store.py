"""The token-signing keys all nodes share, in SQL: :class:`SqlSigningKeyStore`, the store of
:mod:`strata.auth.keyring` (the port :class:`strata.auth.keyring.SigningKeyStore`).

The rows hold sealed PEM only; sealing and opening are the key ring's. The one active key has
``active = 1`` (a unique column, NULL for retired keys), so two nodes creating the first key
at once cannot both succeed: the loser's insert is a :class:`Conflict`, and it uses the
winner's key.
"""

from __future__ import annotations

import sqlalchemy as sa

from strata.auth.keys import StoredKey
from strata.meta.database import Batch, Database
from strata.meta.errors import Conflict
from strata.meta.schema_auth import auth_signing_keys as keys_table

__all__ = ["SqlSigningKeyStore"]


def _rows(conn: sa.Connection) -> list[StoredKey]:
    rows = conn.execute(sa.select(keys_table.c.kid, keys_table.c.sealed_key,
                                  keys_table.c.created_at, keys_table.c.retired_at)
                        .order_by(keys_table.c.created_at))
    return [StoredKey(str(r.kid), str(r.sealed_key), float(r.created_at),
                      None if r.retired_at is None else float(r.retired_at)) for r in rows]


def _values(key: StoredKey) -> dict[str, object]:
    return {"kid": key.kid, "sealed_key": key.sealed, "created_at": key.created_at,
            "retired_at": key.retired_at, "active": 1 if key.retired_at is None else None}


class SqlSigningKeyStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def keys_sync(self) -> list[StoredKey]:
        return self._db.read_sync(_rows)

    async def keys(self) -> list[StoredKey]:
        return await self._db.read(_rows)

    def add(self, key: StoredKey) -> bool:
        def job(conn: sa.Connection, _batch: Batch) -> None:
            conn.execute(sa.insert(keys_table).values(**_values(key)))

        try:
            self._db.write_sync(job)
        except Conflict:
            return False
        return True

    def rotate(self, key: StoredKey, forget_before: float | None) -> list[str]:
        if key.retired_at is not None:
            raise ValueError("the new key of a rotation is active")

        def job(conn: sa.Connection, _batch: Batch) -> list[str]:
            changed = [str(kid) for (kid,) in conn.execute(
                sa.select(keys_table.c.kid).where(keys_table.c.active == 1))]
            conn.execute(sa.update(keys_table).where(keys_table.c.active == 1)
                         .values(active=None, retired_at=key.created_at))
            old: sa.ColumnElement[bool] = keys_table.c.retired_at.is_not(None)
            if forget_before is not None:
                old = sa.and_(old, keys_table.c.retired_at < forget_before)
            dropped = [str(kid) for (kid,) in conn.execute(sa.select(keys_table.c.kid)
                                                            .where(old))]
            conn.execute(sa.delete(keys_table).where(old))
            conn.execute(sa.insert(keys_table).values(**_values(key)))
            return sorted(set(changed) | set(dropped))

        return self._db.write_sync(job)
