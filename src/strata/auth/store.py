"""AuthStore: users, robots and role grants in SQL (tables in :mod:`strata.meta.auth_tables`).

Synchronous on purpose: the CLI calls it directly, and the server calls it from a worker thread
(next to the argon2 verification that dominates a login anyway). Every method is one short
transaction on the same engine the registry uses (SQLite or PostgreSQL).

What is stored is what :class:`~strata.auth.policy.Principal` needs: an account's roles and,
for ``maintainer``, its images. Password hashes are argon2id strings made by
:class:`~strata.auth.passwords.PasswordHashing`; robot secrets are stored as their SHA-256 hex
(:func:`~strata.auth.passwords.hash_robot_secret`), unique and indexed, so a robot login is one
lookup. Nothing here hashes or verifies: :mod:`strata.auth.service` does.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum

import sqlalchemy as sa

from strata.auth.policy import Principal, Role
from strata.auth.scope import is_valid_repository_name
from strata.meta.auth_tables import auth_accounts, auth_role_grants
from strata.meta.engine import locked_begin
from strata.meta.fastread import CompiledSql, FastReader

__all__ = [
    "Account",
    "AccountExists",
    "AccountKind",
    "AccountNotFound",
    "AuthStore",
    "Stamp",
    "is_valid_account_name",
]

#: Account names: lower case letters and digits, then also ``.``, ``_`` and ``-``; ≤ 64.
_ACCOUNT_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
#: Roles a human or robot account can be given (``robot`` follows from the account kind).
GRANTABLE_ROLES = (Role.ADMIN, Role.RELENG, Role.MAINTAINER, Role.REVIEWER)


def is_valid_account_name(name: str) -> bool:
    return isinstance(name, str) and _ACCOUNT_NAME.fullmatch(name) is not None


class AccountKind(StrEnum):
    USER = "user"
    ROBOT = "robot"


class AccountExists(Exception):
    """An account with this name exists already (users and robots share one namespace)."""


class AccountNotFound(Exception):
    """No (active) account with this name and kind."""


@dataclass(frozen=True)
class Account:
    name: str
    kind: AccountKind
    roles: frozenset[Role]
    images: frozenset[str]
    created_at: float
    updated_at: float
    revoked_at: float | None = None
    password_hash: str | None = field(default=None, repr=False)
    uid: str = ""
    generation: int = 1

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    @property
    def stamp(self) -> Stamp:
        return Stamp(self.uid, self.generation, self.active)

    def principal(self) -> Principal:
        """What the policy needs to know about this account (robots carry :attr:`Role.ROBOT`)."""
        roles = set(self.roles)
        if self.kind is AccountKind.ROBOT:
            roles.add(Role.ROBOT)
        return Principal(self.name, frozenset(roles), self.images, uid=self.uid,
                         generation=self.generation)


@dataclass(frozen=True)
class Stamp:
    """Which account a name denotes now (``uid``, never reused) and its credential
    ``generation`` (bumped by every change that ends earlier tokens and logins)."""

    uid: str
    generation: int
    active: bool


def _stamp_query() -> sa.Select[tuple[str | None, int, float | None]]:
    return sa.select(auth_accounts.c.uid, auth_accounts.c.generation,
                     auth_accounts.c.revoked_at).where(
        auth_accounts.c.name == sa.bindparam("name"))


def _new_uid() -> str:
    return secrets.token_hex(16)


#: The SQL that ends every token and cached login issued before it.
_BUMP = {"generation": auth_accounts.c.generation + 1}


def _check_grants(roles: Iterable[Role], images: Iterable[str]) -> tuple[list[Role], list[str]]:
    role_list = sorted({Role(r) for r in roles})
    image_list = sorted(set(images))
    for role in role_list:
        if role not in GRANTABLE_ROLES:
            raise ValueError(f"role {role.value!r} cannot be granted")
    for image in image_list:
        if not is_valid_repository_name(image):
            raise ValueError(f"invalid image name {image[:300]!r}")
    if image_list and Role.MAINTAINER not in role_list:
        raise ValueError("images are given only with the maintainer role")
    if Role.MAINTAINER in role_list and not image_list:
        raise ValueError("the maintainer role needs at least one image")
    return role_list, image_list


class AuthStore:
    def __init__(self, engine: sa.Engine, *, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self._clock = clock
        self._fast = FastReader(engine)
        self._stamp_sql = CompiledSql(engine, _stamp_query())

    @property
    def stamps_inline(self) -> bool:
        """True when :meth:`stamp` may run on the event loop (SQLite: ~10 µs, its own
        connection); otherwise (PostgreSQL) call it on a thread."""
        return self.engine.dialect.name == "sqlite"

    def stamp(self, name: str) -> Stamp | None:
        """The uid and generation of the account called *name* now: one indexed read on a
        connection of its own, cheap enough for every request (see :mod:`strata.meta.fastread`;
        on SQLite only from one thread per store, the event loop's)."""
        if not is_valid_account_name(name):
            return None
        row = self._fast.first(self._stamp_sql, name=name)
        if row is None or row[0] is None:
            return None
        return Stamp(str(row[0]), int(row[1]), row[2] is None)

    # -- reading ---------------------------------------------------------------------------
    def _read(self) -> sa.Connection:
        return self.engine.connect().execution_options(readonly=True)

    def _load(self, conn: sa.Connection, where: sa.ColumnElement[bool]) -> Account | None:
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

    def get(self, name: str) -> Account | None:
        """The account called *name* (user or robot, revoked or not), or None."""
        if not is_valid_account_name(name):
            return None
        with self._read() as conn:
            return self._load(conn, auth_accounts.c.name == name)

    def find_robot(self, secret_hash: str) -> Account | None:
        """The active robot whose secret hashes to *secret_hash*, or None."""
        with self._read() as conn:
            return self._load(conn, sa.and_(auth_accounts.c.secret_hash == secret_hash,
                                            auth_accounts.c.kind == AccountKind.ROBOT.value,
                                            auth_accounts.c.revoked_at.is_(None)))

    def accounts(self) -> list[Account]:
        """Every account, users and robots (revoked ones included), by name."""
        with self._read() as conn:
            names = [r[0] for r in conn.execute(
                sa.select(auth_accounts.c.name).order_by(auth_accounts.c.name))]
            accounts = [self._load(conn, auth_accounts.c.name == n) for n in names]
        return [a for a in accounts if a is not None]

    # -- writing ---------------------------------------------------------------------------
    def _insert_grants(self, conn: sa.Connection, account_id: int, roles: list[Role],
                       images: list[str]) -> None:
        rows = [{"account_id": account_id, "role": r.value, "image": ""}
                for r in roles if r is not Role.MAINTAINER]
        rows += [{"account_id": account_id, "role": Role.MAINTAINER.value, "image": i}
                 for i in images]
        if rows:
            conn.execute(sa.insert(auth_role_grants), rows)

    def create(self, name: str, kind: AccountKind, *, roles: Iterable[Role],
               images: Iterable[str] = (), password_hash: str | None = None,
               secret_hash: str | None = None) -> Account:
        """Create an account; raises :class:`AccountExists` or ``ValueError``.

        Creating a robot under the name of a *revoked* robot replaces the old record.
        """
        if not is_valid_account_name(name):
            raise ValueError(f"invalid account name {name[:80]!r}: use 1-64 of a-z 0-9 . _ - "
                             "starting with a letter or digit")
        role_list, image_list = _check_grants(roles, images)
        if (kind is AccountKind.USER) != (password_hash is not None) or \
                (kind is AccountKind.ROBOT) != (secret_hash is not None):
            raise ValueError("a user has a password hash, a robot a secret hash")
        now = self._clock()
        try:
            with locked_begin(self.engine) as conn:
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
                    uid=_new_uid(), generation=1))
                pk = result.inserted_primary_key
                assert pk is not None
                self._insert_grants(conn, int(pk[0]), role_list, image_list)
        except sa.exc.IntegrityError as exc:  # lost a race with another process
            raise AccountExists(name) from exc
        account = self.get(name)
        assert account is not None
        return account

    def set_password_hash(self, name: str, password_hash: str, *, rehash: bool = False) -> None:
        """Replace a user's password hash; raises :class:`AccountNotFound`. A new password
        ends the account's tokens and cached logins (a new generation); *rehash* (the same
        password with stronger parameters) does not."""
        bump = {} if rehash else _BUMP
        with locked_begin(self.engine) as conn:
            result = conn.execute(
                sa.update(auth_accounts)
                .where(auth_accounts.c.name == name,
                       auth_accounts.c.kind == AccountKind.USER.value)
                .values(password_hash=password_hash, updated_at=self._clock(), **bump))
            if result.rowcount != 1:
                raise AccountNotFound(name)

    def set_grants(self, name: str, roles: Iterable[Role], images: Iterable[str] = ()) -> Account:
        """Replace the roles (and maintained images) of an active account: a new generation,
        so every token and cached login of the account ends at once."""
        role_list, image_list = _check_grants(roles, images)
        with locked_begin(self.engine) as conn:
            row = conn.execute(sa.select(auth_accounts.c.id).where(
                auth_accounts.c.name == name, auth_accounts.c.revoked_at.is_(None))).first()
            if row is None:
                raise AccountNotFound(name)
            conn.execute(sa.delete(auth_role_grants)
                         .where(auth_role_grants.c.account_id == row.id))
            self._insert_grants(conn, int(row.id), role_list, image_list)
            conn.execute(sa.update(auth_accounts).where(auth_accounts.c.id == row.id)
                         .values(updated_at=self._clock(), **_BUMP))
        account = self.get(name)
        assert account is not None
        return account

    def set_user_active(self, name: str, active: bool) -> None:
        """Disable a user or enable it again: a new generation either way, so the user's
        tokens and cached logins end at once (enabling does not revive them)."""
        now = self._clock()
        with locked_begin(self.engine) as conn:
            result = conn.execute(
                sa.update(auth_accounts)
                .where(auth_accounts.c.name == name,
                       auth_accounts.c.kind == AccountKind.USER.value)
                .values(revoked_at=None if active else now, updated_at=now, **_BUMP))
            if result.rowcount != 1:
                raise AccountNotFound(name)

    def revoke_robot(self, name: str) -> None:
        """Revoke an active robot (its secret stops working at once); :class:`AccountNotFound`."""
        now = self._clock()
        with locked_begin(self.engine) as conn:
            result = conn.execute(
                sa.update(auth_accounts)
                .where(auth_accounts.c.name == name,
                       auth_accounts.c.kind == AccountKind.ROBOT.value,
                       auth_accounts.c.revoked_at.is_(None))
                .values(secret_hash=None, revoked_at=now, updated_at=now, **_BUMP))
            if result.rowcount != 1:
                raise AccountNotFound(name)
