"""Accounts as the authentication use-cases see them: the values, the rules a stored account
obeys, and what :mod:`strata.auth.service` needs from the store that keeps them.

The store itself (users, robots and role grants in SQL) is
:class:`strata.meta.account_store.SqlAccountStore`; it speaks these values, never rows.

What is stored is what :class:`~strata.auth.policy.Principal` needs: an account's roles and,
for ``maintainer``, its images. Password hashes are argon2id strings made by
:class:`~strata.auth.passwords.PasswordHashing`; robot secrets are stored as their SHA-256 hex
(:func:`~strata.auth.passwords.hash_robot_secret`), unique and indexed, so a robot login is one
lookup. The store hashes and verifies nothing: :mod:`strata.auth.service` does.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from strata.auth.policy import Principal, Role
from strata.auth.scope import is_valid_repository_name

__all__ = [
    "GRANTABLE_ROLES",
    "Account",
    "AccountExists",
    "AccountKind",
    "AccountNotFound",
    "AccountStore",
    "Stamp",
    "check_grants",
    "check_new_account",
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
class Stamp:
    """Which account a name denotes now (``uid``, never reused) and its credential
    ``generation`` (bumped by every change that ends earlier tokens and logins)."""

    uid: str
    generation: int
    active: bool


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


def check_grants(roles: Iterable[Role], images: Iterable[str]) -> tuple[list[Role], list[str]]:
    """The roles and images of a grant, sorted and deduplicated; ``ValueError`` when they do
    not make a grant (an ungrantable role, a bad image name, images without ``maintainer`` or
    ``maintainer`` without images)."""
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


def check_new_account(name: str, kind: AccountKind, password_hash: str | None,
                      secret_hash: str | None) -> None:
    """``ValueError`` unless *name* is a valid account name and the account has the credential
    of its kind (a user a password hash, a robot a secret hash)."""
    if not is_valid_account_name(name):
        raise ValueError(f"invalid account name {name[:80]!r}: use 1-64 of a-z 0-9 . _ - "
                         "starting with a letter or digit")
    if (kind is AccountKind.USER) != (password_hash is not None) or \
            (kind is AccountKind.ROBOT) != (secret_hash is not None):
        raise ValueError("a user has a password hash, a robot a secret hash")


class AccountStore(Protocol):
    """Users, robots and role grants (:class:`strata.meta.account_store.SqlAccountStore`).

    The plain methods block (the CLI calls them directly, the server from a worker thread
    next to the argon2 work of a login); :meth:`stamp` and :meth:`load` are for the event
    loop. Every write is one short transaction; the ones that end an account's tokens and
    cached logins bump its generation.
    """

    async def stamp(self, name: str) -> Stamp | None:
        """The uid, generation and state of the account called *name* now (None: no such
        account): one indexed read, cheap enough for every request."""
        ...

    async def load(self, name: str) -> Account | None:
        """:meth:`get` for the event loop."""
        ...

    def get(self, name: str) -> Account | None:
        """The account called *name* (user or robot, revoked or not), or None."""
        ...

    def find_robot(self, secret_hash: str) -> Account | None:
        """The active robot whose secret hashes to *secret_hash*, or None."""
        ...

    def accounts(self) -> list[Account]:
        """Every account, users and robots (revoked ones included), by name."""
        ...

    def create(self, name: str, kind: AccountKind, *, roles: Iterable[Role],
               images: Iterable[str] = (), password_hash: str | None = None,
               secret_hash: str | None = None) -> Account:
        """Create an account; raises :class:`AccountExists` or ``ValueError``. Creating a
        robot under the name of a *revoked* robot replaces the old record."""
        ...

    def set_password_hash(self, name: str, password_hash: str, *, rehash: bool = False) -> None:
        """Replace a user's password hash; raises :class:`AccountNotFound`. A new password
        ends the account's tokens and cached logins (a new generation); *rehash* (the same
        password with stronger parameters) does not."""
        ...

    def set_grants(self, name: str, roles: Iterable[Role], images: Iterable[str] = ()) -> Account:
        """Replace the roles (and maintained images) of an active account: a new generation."""
        ...

    def set_user_active(self, name: str, active: bool) -> None:
        """Disable a user or enable it again: a new generation either way."""
        ...

    def revoke_robot(self, name: str) -> None:
        """Revoke an active robot (its secret stops working at once); :class:`AccountNotFound`."""
        ...
