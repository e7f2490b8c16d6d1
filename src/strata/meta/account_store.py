"""Users, robots and role grants in SQL: :class:`SqlAccountStore`, the accounts store of
:mod:`strata.auth` (the port :class:`strata.auth.accounts.AccountStore`), on :class:`Database`.

Every write is one short transaction through :meth:`Database.write_sync` (the CLI calls the
store directly, the server from a worker thread next to a login's argon2 work). The read made
on every authenticated request (:meth:`SqlAccountStore.stamp`: which account a name denotes
now, at which credential generation) is one indexed SELECT compiled once and run on the
database's hot-read path (:meth:`Database.fetch_one`).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable

import sqlalchemy as sa

from strata.auth.accounts import (
    Account,
    AccountExists,
    AccountKind,
    AccountNotFound,
    Stamp,
    check_grants,
    check_new_account,
    is_valid_account_name,
)
from strata.auth.policy import Role
from strata.meta.database import Batch, Database
from strata.meta.errors import Conflict
from strata.meta.schema_auth import auth_accounts, auth_role_grants

__all__ = ["SqlAccountStore"]

#: The SQL that ends every token and cached login issued before it.
_BUMP = {"generation": auth_accounts.c.generation + 1}


def _stamp_query() -> sa.Select[tuple[str | None, int, float | None]]:
    return sa.select(auth_accounts.c.uid, auth_accounts.c.generation,
                     auth_accounts.c.revoked_at).where(
        auth_accounts.c.name == sa.bindparam("name"))


class SqlAccountStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._stamp_sql = db.compiled(_stamp_query())

    # -- reading ---------------------------------------------------------------------------
    async def stamp(self, name: str) -> Stamp | None:
        if not is_valid_account_name(name):
            return None
        row = await self._db.fetch_one(self._stamp_sql, {"name": name})
        if row is None or row[0] is None:
            return None
        return Stamp(str(row[0]), int(row[1]), row[2] is None)

    async def load(self, name: str) -> Account | None:
        if not is_valid_account_name(name):
            return None
        return await self._db.read(lambda conn: _load(conn, auth_accounts.c.name == name))

    def get(self, name: str) -> Account | None:
        if not is_valid_account_name(name):
            return None
        return self._db.read_sync(lambda conn: _load(conn, auth_accounts.c.name == name))

    def find_robot(self, secret_hash: str) -> Account | None:
        where = sa.and_(auth_accounts.c.secret_hash == secret_hash,
                        auth_accounts.c.kind == AccountKind.ROBOT.value,
                        auth_accounts.c.revoked_at.is_(None))
        return self._db.read_sync(lambda conn: _load(conn, where))

    def accounts(self) -> list[Account]:
        def go(conn: sa.Connection) -> list[Account]:
            names = [r[0] for r in conn.execute(
                sa.select(auth_accounts.c.name).order_by(auth_accounts.c.name))]
            accounts = [_load(conn, auth_accounts.c.name == n) for n in names]
            return [a for a in accounts if a is not None]
        return self._db.read_sync(go)

    # -- writing ---------------------------------------------------------------------------
    def create(self, name: str, kind: AccountKind, *, roles: Iterable[Role],
               images: Iterable[str] = (), password_hash: str | None = None,
               secret_hash: str | None = None) -> Account:
        check_new_account(name, kind, password_hash, secret_hash)
        role_list, image_list = check_grants(roles, images)
        def job(conn: sa.Connection, _batch: Batch) -> None:
            now = self._db.now()
            old = conn.execute(sa.select(auth_accounts.c.id, auth_accounts.c.kind,
                                         auth_accounts.c.revoked_at)
                               .where(auth_accounts.c.name == name)).first()
            if old is not None:
                if kind is AccountKind.ROBOT and old.kind == kind.value and \
                        old.revoked_at is not None:
                    conn.execute(sa.delete(auth_role_grants)
                                 .where(auth_role_grants.c.account_id == old.id))
                    conn.execute(sa.delete(auth_accounts).where(auth_accounts.c.id == old.id))
                else:
                    raise AccountExists(name)
            result = conn.execute(sa.insert(auth_accounts).values(
                name=name, kind=kind.value, password_hash=password_hash,
                secret_hash=secret_hash, created_at=now, updated_at=now,
                uid=secrets.token_hex(16), generation=1))
            pk = result.inserted_primary_key
            assert pk is not None
            _insert_grants(conn, int(pk[0]), role_list, image_list)

        try:
            self._db.write_sync(job)
        except Conflict as exc:  # lost a race with another process
            raise AccountExists(name) from exc
        account = self.get(name)
        assert account is not None
        return account

    def set_password_hash(self, name: str, password_hash: str, *, rehash: bool = False) -> None:
        bump = {} if rehash else _BUMP
        def job(conn: sa.Connection, _batch: Batch) -> None:
            now = self._db.now()
            result = conn.execute(
                sa.update(auth_accounts)
                .where(auth_accounts.c.name == name,
                       auth_accounts.c.kind == AccountKind.USER.value)
                .values(password_hash=password_hash, updated_at=now, **bump))
            if result.rowcount != 1:
                raise AccountNotFound(name)

        self._db.write_sync(job)

    def set_grants(self, name: str, roles: Iterable[Role], images: Iterable[str] = ()) -> Account:
        role_list, image_list = check_grants(roles, images)
        def job(conn: sa.Connection, _batch: Batch) -> None:
            now = self._db.now()
            row = conn.execute(sa.select(auth_accounts.c.id).where(
                auth_accounts.c.name == name, auth_accounts.c.revoked_at.is_(None))).first()
            if row is None:
                raise AccountNotFound(name)
            conn.execute(sa.delete(auth_role_grants)
                         .where(auth_role_grants.c.account_id == row.id))
            _insert_grants(conn, int(row.id), role_list, image_list)
            conn.execute(sa.update(auth_accounts).where(auth_accounts.c.id == row.id)
                         .values(updated_at=now, **_BUMP))

        self._db.write_sync(job)
        account = self.get(name)
        assert account is not None
        return account

    def set_user_active(self, name: str, active: bool) -> None:
        def job(conn: sa.Connection, _batch: Batch) -> None:
            now = self._db.now()
            result = conn.execute(
                sa.update(auth_accounts)
                .where(auth_accounts.c.name == name,
                       auth_accounts.c.kind == AccountKind.USER.value)
                .values(revoked_at=None if active else now, updated_at=now, **_BUMP))
            if result.rowcount != 1:
                raise AccountNotFound(name)

        self._db.write_sync(job)

    def revoke_robot(self, name: str) -> None:
        def job(conn: sa.Connection, _batch: Batch) -> None:
            now = self._db.now()
            result = conn.execute(
                sa.update(auth_accounts)
                .where(auth_accounts.c.name == name,
                       auth_accounts.c.kind == AccountKind.ROBOT.value,
                       auth_accounts.c.revoked_at.is_(None))
                .values(secret_hash=None, revoked_at=now, updated_at=now, **_BUMP))
            if result.rowcount != 1:
                raise AccountNotFound(name)

        self._db.write_sync(job)


def _load(conn: sa.Connection, where: sa.ColumnElement[bool]) -> Account | None:
    row = conn.execute(sa.select(auth_accounts).where(where)).mappings().first()
    if row is None:
        return None
    roles: set[Role] = set()
    images: set[str] = set()
    for role, image in conn.execute(
        sa.select(auth_role_grants.c.role, auth_role_grants.c.image)
        .where(auth_role_grants.c.account_id == row["id"])
    ):
        roles.add(Role(role))
        if image:
            images.add(image)
    return Account(
        name=row["name"], kind=AccountKind(row["kind"]), roles=frozenset(roles),
        images=frozenset(images), created_at=row["created_at"],
        updated_at=row["updated_at"], revoked_at=row["revoked_at"],
        password_hash=row["password_hash"], uid=row["uid"] or "",
        generation=row["generation"],
    )


def _insert_grants(conn: sa.Connection, account_id: int, roles: list[Role],
                   images: list[str]) -> None:
    rows = [{"account_id": account_id, "role": r.value, "image": ""}
            for r in roles if r is not Role.MAINTAINER]
    rows += [{"account_id": account_id, "role": Role.MAINTAINER.value, "image": i}
             for i in images]
    if rows:
        conn.execute(sa.insert(auth_role_grants), rows)
