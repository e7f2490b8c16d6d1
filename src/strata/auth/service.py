"""The authentication use-cases: accounts, logins, grants, and the first administrator.

:class:`AuthService` is what the CLI (``strata user …``, ``strata robot …``) and the HTTP layer
(the token endpoint and the ``/v2/`` gate in :mod:`strata.server.auth`) call; it composes the
building blocks of this package and knows no HTTP.

Logins (:meth:`AuthService.login`) take a user name and a password or a robot secret:

* a password is verified with argon2id; an unknown user, a robot name or a revoked account
  costs the same argon2 work (:meth:`PasswordHashing.verify_or_dummy`), so the time taken does
  not tell which accounts exist;
* a robot secret (``strata_robot_…``) is looked up by its SHA-256 and must belong to the named
  robot; a user password may therefore never start with that prefix;
* failures are rate limited per client IP + user name, and per client IP (password spraying);
  only failures spend from the buckets, and attempts for one IP + user name are serialised, so
  concurrent guesses cannot slip past the check while the first ones are still hashing. A
  throttled login raises :class:`LoginThrottled` with the seconds to wait;
* a password login that succeeded is remembered for ``cache_ttl`` seconds under an HMAC of the
  credentials (keyed with a per-process random key), so clients that send Basic credentials
  with every ``/v2/`` request do not pay argon2 each time; each hit is checked against the
  account's generation (below), so the old password stops at once after a change. Robot
  logins (one indexed lookup) are not cached: a revoked robot cannot log in any more at once.

Accounts have a stable ``uid`` and a credential ``generation``
(:class:`~strata.auth.accounts.Stamp`), bumped by revoke, disable, enable, password and role
changes. Tokens carry both and cached logins remember them; every use compares them with the
account's row (one indexed read), so any of those changes ends every earlier token and cached
login at once, in every worker and on every node.

The failed-login budgets are a :class:`~strata.auth.ratelimit.LoginBudget`: a server passes
the one in the database (every worker of every node spends from the same buckets); without
one, they live in this process. The login cache lives in each serving process.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import os
import secrets
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from strata.auth.accounts import (
    Account,
    AccountExists,
    AccountKind,
    AccountNotFound,
    AccountStore,
    Stamp,
)
from strata.auth.passwords import (
    PasswordHashing,
    hash_robot_secret,
    is_robot_secret,
    new_robot_secret,
)
from strata.auth.policy import Principal, Role, everything_public, grant
from strata.auth.ratelimit import LoginBudget, LoginLimits, MemoryLoginBudget, rate_limit_key
from strata.auth.scope import CATALOG, REGISTRY, Scope

__all__ = [
    "ADMIN_USER",
    "MIN_PASSWORD_LENGTH",
    "AccountExists",
    "AccountNotFound",
    "AuthService",
    "Bootstrap",
    "InvalidCredentials",
    "LoginLimits",
    "LoginThrottled",
]

ADMIN_USER = "admin"
MIN_PASSWORD_LENGTH = 8
#: Roles that see every repository (and so may list the catalog when some are private).
_SEES_ALL = frozenset({Role.ADMIN, Role.RELENG, Role.REVIEWER})


class InvalidCredentials(Exception):
    """Unknown user, wrong password, revoked robot: deliberately one answer for all."""


class LoginThrottled(Exception):
    """Too many failed logins from this client (for this user); retry after ``retry_after`` s."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed logins; retry after {retry_after} s")
        self.retry_after = max(1, retry_after)


@dataclass(frozen=True)
class Bootstrap:
    """What the first start did: the admin it created and where its password is (if generated)."""

    user: str
    password_file: Path | None


def check_password(password: str) -> None:
    """Refuse passwords the service will not store (``ValueError`` with the reason)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
    if is_robot_secret(password):
        raise ValueError("a password must not look like a robot token")


class _KeyedLocks:
    """One asyncio lock per key, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class _LoginCache:
    """Recent successful logins: HMAC(credentials) -> (principal, expiry); bounded, LRU. The
    principal carries the account's uid and generation, so a hit is checked against the
    account's stamp as it is now: a new password, new roles or a disabled account end it."""

    def __init__(self, ttl: float, clock: Callable[[], float], max_entries: int = 1024) -> None:
        self._ttl = ttl
        self._clock = clock
        self._max = max_entries
        self._key = secrets.token_bytes(32)
        self._entries: OrderedDict[bytes, tuple[Principal, float]] = OrderedDict()

    def _digest(self, username: str, password: str) -> bytes:
        message = username.encode("utf-8", "surrogatepass") + b"\0" + \
            password.encode("utf-8", "surrogatepass")
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def get(self, username: str, password: str) -> Principal | None:
        """The principal of a recent login with these credentials."""
        if self._ttl <= 0:
            return None
        key = self._digest(username, password)
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[1] <= self._clock():
            del self._entries[key]
            return None
        return entry[0]

    def drop(self, username: str, password: str) -> None:
        self._entries.pop(self._digest(username, password), None)

    def put(self, username: str, password: str, principal: Principal) -> None:
        if self._ttl <= 0:
            return
        key = self._digest(username, password)
        self._entries[key] = (principal, self._clock() + self._ttl)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)


class _AccountCache:
    """Accounts by name, each good exactly while the account's stamp (uid, generation) is
    unchanged: every use reads the stamp (one indexed SELECT, ~10-30 µs on SQLite), and only
    a changed stamp reloads the account (roles and images). There is no time window: a change
    made by any process (``strata user …`` against the data dir included) counts at once."""

    def __init__(self, store: AccountStore, max_entries: int = 4096) -> None:
        self._store = store
        self._max = max_entries
        self._entries: OrderedDict[str, Account] = OrderedDict()

    async def current(self, name: str) -> Account | None:
        """The active account called *name* as it is now, or None."""
        stamp = await self._store.stamp(name)
        if stamp is None or not stamp.active:
            self._entries.pop(name, None)
            return None
        account = self._entries.get(name)
        if account is None or account.stamp != stamp:
            account = await self._store.load(name)
            if account is None or not account.active:
                self._entries.pop(name, None)
                return None
            self._entries[name] = account
        self._entries.move_to_end(name)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)
        return account


class AuthService:
    """Accounts, logins and grants over an :class:`~strata.auth.accounts.AccountStore`.

    *public* says which repositories anonymous clients may pull (default: all). When it is not
    :func:`everything_public`, ``registry:catalog:*`` is granted only to admin, releng and
    reviewer accounts, so the catalog cannot reveal private repository names.
    """

    def __init__(self, store: AccountStore, hashing: PasswordHashing, *,
                 public: Callable[[str], bool] = everything_public,
                 limits: LoginLimits | None = None,
                 budget: LoginBudget | None = None,
                 cache_ttl: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """*budget*: the failed-login budgets (a server passes the database's, shared by every
        worker and node); without, in-process ones built from *limits*."""
        self.store = store
        self.hashing = hashing
        self.public = public
        self._catalog_for_all = public is everything_public
        self._budget = budget or MemoryLoginBudget(limits or LoginLimits(), clock)
        self._locks = _KeyedLocks()
        # argon2id takes its memory cost (64 MiB by default) for each verification while it
        # runs: one at a time per process bounds that to one (issue #18: peak PSS).
        self._argon2 = asyncio.Semaphore(1)
        self._cache = _LoginCache(cache_ttl, clock)
        self._accounts = _AccountCache(store)

    # -- administration (CLI) ----------------------------------------------------------------
    def add_user(self, name: str, password: str, role: Role,
                 images: Iterable[str] = ()) -> Account:
        check_password(password)
        return self.store.create(name, AccountKind.USER, roles=[role], images=images,
                                 password_hash=self.hashing.hash(password))

    def set_password(self, name: str, password: str) -> None:
        check_password(password)
        account = self.store.get(name)
        if account is None or account.kind is not AccountKind.USER:
            raise AccountNotFound(name)
        self.store.set_password_hash(name, self.hashing.hash(password))

    def set_roles(self, name: str, role: Role, images: Iterable[str] = ()) -> Account:
        return self.store.set_grants(name, [role], images)

    def set_active(self, name: str, active: bool) -> None:
        self.store.set_user_active(name, active)

    def accounts(self) -> list[Account]:
        return self.store.accounts()

    def add_robot(self, name: str, role: Role, images: Iterable[str] = ()) -> tuple[Account, str]:
        """Create a robot; returns it and its secret (shown once, stored only as a hash)."""
        secret = new_robot_secret()
        account = self.store.create(name, AccountKind.ROBOT, roles=[role], images=images,
                                    secret_hash=hash_robot_secret(secret))
        return account, secret

    def revoke_robot(self, name: str) -> None:
        self.store.revoke_robot(name)

    def bootstrap_admin(self, password: str | None, password_file: Path) -> Bootstrap | None:
        """First start: create ``admin`` (role admin) unless it exists.

        With *password* (``$STRATA_ADMIN_PASSWORD``) that is its password; without, one is
        generated and written to *password_file* (mode 0600, directory 0700). Returns None
        when ``admin`` existed already.
        """
        if self.store.get(ADMIN_USER) is not None:
            return None
        generated = not password
        secret = password or secrets.token_urlsafe(24)
        try:
            self.add_user(ADMIN_USER, secret, Role.ADMIN)
        except AccountExists:
            return None
        if not generated:
            return Bootstrap(ADMIN_USER, None)
        password_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with contextlib.suppress(FileNotFoundError):
            password_file.unlink()
        fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secret + "\n")
        return Bootstrap(ADMIN_USER, password_file)

    # -- authentication --------------------------------------------------------------------
    def verify_credentials(self, username: str, password: str) -> Principal | None:
        """The principal for these credentials, or None (CPU-heavy: argon2; call in a thread)."""
        verified = self._verify(username, password)
        return None if verified is None else verified.principal()

    def _verify(self, username: str, password: str) -> Account | None:
        if is_robot_secret(password):
            robot = self.store.find_robot(hash_robot_secret(password))
            if robot is None or not hmac.compare_digest(robot.name.encode(), username.encode()):
                return None
            return robot
        account = self.store.get(username)
        usable = account is not None and account.kind is AccountKind.USER and account.active
        stored = account.password_hash if usable and account is not None else None
        if not self.hashing.verify_or_dummy(stored, password):
            return None
        assert account is not None and stored is not None
        if self.hashing.needs_rehash(stored):
            with contextlib.suppress(AccountNotFound, ValueError):
                self.store.set_password_hash(account.name, self.hashing.hash(password),
                                             rehash=True)
        return account

    async def login(self, username: str, password: str, client_ip: str) -> Principal:
        """Authenticate; raises :class:`InvalidCredentials` or :class:`LoginThrottled`."""
        robot = is_robot_secret(password)
        cached = None if robot else await self._recent_login(username, password)
        if cached is not None:
            return cached
        user_key = rate_limit_key(client_ip, username)
        ip_key = rate_limit_key(client_ip, None)
        async with self._locks.hold(user_key):
            # A burst of requests with the same new credentials queues here: the first one
            # verifies (argon2), the others find its result instead of verifying in turn.
            cached = None if robot else await self._recent_login(username, password)
            if cached is not None:
                return cached
            wait = await self._budget.retry_after(user_key, ip_key)
            if wait > 0:
                raise LoginThrottled(wait)
            if robot:  # a SHA-256 and one indexed lookup, no argon2
                account = await asyncio.to_thread(self._verify, username, password)
            else:
                async with self._argon2:
                    account = await asyncio.to_thread(self._verify, username, password)
            if account is None:
                await self._budget.failed(user_key, ip_key)
                raise InvalidCredentials()
            if not robot:  # a robot login is one indexed lookup: revocation acts at once
                self._cache.put(username, password, account.principal())
        return account.principal()

    async def _recent_login(self, username: str, password: str) -> Principal | None:
        """A cached login, if the account's stamp (uid, generation) is still the one it was
        cached with: any password, role or activation change since ends it at once."""
        cached = self._cache.get(username, password)
        if cached is None:
            return None
        if not self._still_current(cached, await self.store.stamp(username)):
            self._cache.drop(username, password)
            return None
        return cached

    @staticmethod
    def _still_current(principal: Principal, stamp: Stamp | None) -> bool:
        return stamp is not None and stamp.active and stamp.uid == principal.uid and \
            stamp.generation == principal.generation

    async def principal(self, subject: str) -> Principal | None:
        """The principal a token's ``sub`` names now (``""`` = anonymous); None if gone."""
        if subject == "":
            return Principal.anonymous()
        return _active(await self.store.load(subject))

    async def token_principal(self, subject: str, uid: str | None,
                              generation: int | None) -> Principal | None:
        """The principal of a token for *subject* bound to account *uid* at *generation*, as
        the account is now; None when the account is gone or disabled, is another account of
        the same name, or changed credentials or roles since (a new generation). Checked on
        every use: one indexed read of the account's stamp (the roles are reloaded only when
        the stamp changed)."""
        if subject == "":
            return Principal.anonymous()
        account = await self._accounts.current(subject)
        if account is None or account.uid != uid or account.generation != generation:
            return None
        return account.principal()

    # -- authorisation ---------------------------------------------------------------------
    def grant(self, principal: Principal, requested: Iterable[Scope]) -> tuple[Scope, ...]:
        """Requested ∩ allowed, as :func:`strata.auth.policy.grant`, minus a private catalog."""
        granted = grant(principal, requested, public=self.public)
        if self._catalog_for_all or principal.roles & _SEES_ALL:
            return granted
        return tuple(s for s in granted if (s.type, s.name) != (REGISTRY, CATALOG))

    def allows(self, principal: Principal, scope: Scope) -> bool:
        """True when *principal* may do every action of *scope*."""
        granted = self.grant(principal, [scope])
        return bool(granted) and granted[0].actions >= scope.actions


def _active(account: Account | None) -> Principal | None:
    return None if account is None or not account.active else account.principal()
