"""Accounts: the store, the service's administration use-cases, the first admin, and the
``strata user`` / ``strata robot`` commands."""

from __future__ import annotations

import asyncio
import json
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from click.testing import CliRunner

from strata.auth.accounts import AccountKind
from strata.auth.passwords import PasswordHashing, is_robot_secret
from strata.auth.policy import Principal, Role
from strata.auth.service import AccountExists, AccountNotFound, AuthService, InvalidCredentials
from strata.cli.main import cli
from strata.meta.account_store import SqlAccountStore
from strata.meta.connection import create_engine, migrate, sqlite_url
from strata.meta.database import Database

from .conftest import fast_hashing


@pytest.fixture
def service(tmp_path: Path) -> Iterator[AuthService]:
    engine = create_engine(sqlite_url(tmp_path))
    migrate(engine)
    yield AuthService(SqlAccountStore(Database(engine)), fast_hashing())
    engine.dispose()


def test_users_and_roles(service: AuthService) -> None:
    service.add_user("alice", "alice-password", Role.MAINTAINER, ["f25/cockpit", "f25/ws"])
    service.add_user("bob", "bob-password", Role.RELENG)
    alice = service.store.get("alice")
    assert alice is not None and alice.kind is AccountKind.USER
    assert alice.principal() == Principal("alice", frozenset({Role.MAINTAINER}),
                                          frozenset({"f25/cockpit", "f25/ws"}))
    assert "password" not in repr(alice) and "argon2" not in repr(alice)
    assert [a.name for a in service.accounts()] == ["alice", "bob"]
    assert service.verify_credentials("alice", "alice-password") == alice.principal()
    assert service.verify_credentials("alice", "bob-password") is None
    assert service.verify_credentials("carol", "alice-password") is None


@pytest.mark.parametrize(("name", "password", "role", "images", "error"), [
    ("Alice", "long-enough", Role.ADMIN, (), "invalid account name"),
    ("a" * 65, "long-enough", Role.ADMIN, (), "invalid account name"),
    ("a:b", "long-enough", Role.ADMIN, (), "invalid account name"),
    ("alice", "short", Role.ADMIN, (), "at least 8"),
    ("alice", "strata_robot_xxxxxxxx", Role.ADMIN, (), "robot token"),
    ("alice", "long-enough", Role.MAINTAINER, (), "at least one image"),
    ("alice", "long-enough", Role.RELENG, ("f25/a",), "only with the maintainer"),
    ("alice", "long-enough", Role.MAINTAINER, ("F25/a",), "invalid image"),
    ("alice", "long-enough", Role.ROBOT, (), "cannot be granted"),
])
def test_invalid_users_are_refused(service: AuthService, name: str, password: str, role: Role,
                                   images: tuple[str, ...], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        service.add_user(name, password, role, images)
    assert service.accounts() == []


def test_names_are_unique_across_users_and_robots(service: AuthService) -> None:
    service.add_user("build", "build-password", Role.ADMIN)
    with pytest.raises(AccountExists):
        service.add_user("build", "other-password", Role.ADMIN)
    with pytest.raises(AccountExists):
        service.add_robot("build", Role.RELENG)


def test_robots(service: AuthService) -> None:
    account, secret = service.add_robot("builder", Role.RELENG)
    assert is_robot_secret(secret)
    assert account.principal().roles == {Role.RELENG, Role.ROBOT}
    assert service.verify_credentials("builder", secret) == account.principal()
    assert service.verify_credentials("builder", secret[:-1] + "x") is None
    with pytest.raises(AccountExists):
        service.add_robot("builder", Role.RELENG)
    service.revoke_robot("builder")
    assert service.verify_credentials("builder", secret) is None
    with pytest.raises(AccountNotFound):
        service.revoke_robot("builder")
    # A revoked robot's name can be given to a new robot, with a new token.
    account, again = service.add_robot("builder", Role.MAINTAINER, ["f25/cockpit"])
    assert again != secret and account.images == {"f25/cockpit"}
    assert service.verify_credentials("builder", again) is not None
    with pytest.raises(AccountNotFound):
        service.set_password("builder", "a-password")


def test_set_password_and_rehash(tmp_path: Path) -> None:
    engine = create_engine(sqlite_url(tmp_path))
    migrate(engine)
    weak = AuthService(SqlAccountStore(Database(engine)), PasswordHashing(
        PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)))
    weak.add_user("alice", "first-password", Role.REVIEWER)
    weak.set_password("alice", "second-password")
    assert weak.verify_credentials("alice", "first-password") is None
    before = weak.store.get("alice")
    assert before is not None and before.password_hash is not None
    stronger = AuthService(SqlAccountStore(Database(engine)), PasswordHashing(
        PasswordHasher(time_cost=2, memory_cost=16, parallelism=1)))
    assert stronger.verify_credentials("alice", "second-password") is not None
    after = stronger.store.get("alice")
    assert after is not None and after.password_hash != before.password_hash
    assert "t=2" in (after.password_hash or "")
    with pytest.raises(AccountNotFound):
        weak.set_password("nobody", "a-password")
    engine.dispose()


def test_bootstrap_admin_with_a_given_password(service: AuthService, tmp_path: Path) -> None:
    created = service.bootstrap_admin("from-the-environment", tmp_path / "auth" / "pw")
    assert created is not None and created.password_file is None
    assert not (tmp_path / "auth" / "pw").exists()
    principal = service.verify_credentials("admin", "from-the-environment")
    assert principal is not None and principal.roles == {Role.ADMIN}
    assert service.bootstrap_admin("something-else", tmp_path / "auth" / "pw") is None
    assert service.verify_credentials("admin", "from-the-environment") is not None


def test_bootstrap_admin_generates_a_private_password_file(service: AuthService,
                                                           tmp_path: Path) -> None:
    path = tmp_path / "auth" / "admin-password"
    created = service.bootstrap_admin(None, path)
    assert created is not None and created.password_file == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) & 0o077 == 0
    password = path.read_text().strip()
    assert len(password) >= 24
    assert service.verify_credentials("admin", password) is not None
    assert service.bootstrap_admin(None, path) is None


# -- the commands ---------------------------------------------------------------------------
def run(args: list[str], data: Path, input: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [*args, "--data", str(data)], input=input)
    return result.exit_code, result.stdout, result.stderr


def test_user_commands(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert CliRunner().invoke(cli, ["init", "--data", str(data)]).exit_code == 0
    code, out, err = run(["user", "add", "alice", "--role", "maintainer", "--image",
                          "f25/cockpit", "--image", "f25/ws", "--password-stdin"], data,
                         "alice-password\n")
    assert code == 0, err
    assert "maintainer(f25/cockpit, f25/ws)" in out
    code, out, err = run(["user", "add", "bob", "--role", "releng"], data,
                         "bob-password\nbob-password\n")
    assert code == 0, err
    code, out, err = run(["user", "add", "bob", "--role", "releng", "--password-stdin"], data,
                         "bob-password\n")
    assert code == 1 and "exists already" in err
    code, out, err = run(["user", "add", "carol", "--role", "maintainer", "--password-stdin"],
                         data, "carol-password\n")
    assert code == 1 and "at least one image" in err
    code, out, err = run(["user", "add", "carol", "--role", "wizard", "--password-stdin"], data,
                         "carol-password\n")
    assert code == 2
    code, out, err = run(["user", "passwd", "alice", "--password-stdin"], data, "new-password\n")
    assert code == 0, err
    code, out, err = run(["user", "passwd", "nobody", "--password-stdin"], data,
                         "new-password\n")
    assert code == 1 and "no such account" in err

    code, out, err = run(["robot", "add", "builder"], data)
    assert code == 0, err
    token = out.strip()
    assert is_robot_secret(token) and "not shown again" in err
    code, out, err = run(["robot", "add", "ci", "--image", "f25/cockpit"], data)
    assert code == 0, err

    code, out, err = run(["user", "list", "--json"], data)
    assert code == 0, err
    listed = {a["name"]: a for a in json.loads(out)}
    assert listed["alice"]["roles"] == ["maintainer"]
    assert listed["alice"]["images"] == ["f25/cockpit", "f25/ws"]
    assert listed["builder"]["kind"] == "robot" and listed["builder"]["roles"] == ["releng"]
    assert listed["ci"]["roles"] == ["maintainer"]
    assert token not in out

    code, out, err = run(["robot", "revoke", "builder"], data)
    assert code == 0, err
    code, out, err = run(["robot", "revoke", "builder"], data)
    assert code == 1
    code, out, err = run(["user", "list"], data)
    assert code == 0
    assert any(line.split()[:3] == ["builder", "robot", "revoked"] for line in out.splitlines())

    engine = create_engine(sqlite_url(data))
    service = AuthService(SqlAccountStore(Database(engine)), PasswordHashing())
    assert service.verify_credentials("alice", "new-password") is not None
    assert service.verify_credentials("bob", "bob-password") is not None
    assert service.verify_credentials("builder", token) is None
    engine.dispose()


def test_role_changes_and_disabled_users(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert CliRunner().invoke(cli, ["init", "--data", str(data)]).exit_code == 0
    code, out, err = run(["user", "add", "alice", "--role", "maintainer", "--image",
                          "f25/cockpit", "--password-stdin"], data, "alice-password\n")
    assert code == 0, err
    code, out, err = run(["user", "roles", "alice", "--role", "maintainer", "--image",
                          "f25/ws", "--image", "f25/cockpit"], data)
    assert code == 0, err
    assert "user alice: maintainer(f25/cockpit, f25/ws)" in out
    code, out, err = run(["user", "roles", "alice", "--role", "maintainer"], data)
    assert code == 1 and "at least one image" in err
    code, out, err = run(["user", "roles", "nobody", "--role", "releng"], data)
    assert code == 1 and "no such account: nobody" in err
    code, out, err = run(["user", "roles", "alice", "--role", "releng"], data)
    assert code == 0 and "user alice: releng" in out, err

    engine = create_engine(sqlite_url(data))
    service = AuthService(SqlAccountStore(Database(engine)), PasswordHashing())
    principal = service.verify_credentials("alice", "alice-password")
    assert principal == Principal("alice", frozenset({Role.RELENG}), frozenset())

    code, out, err = run(["user", "disable", "alice"], data)
    assert code == 0, err
    assert service.verify_credentials("alice", "alice-password") is None
    # The JSON API resolves a token's subject on every request: a disabled one is refused.
    assert asyncio.run(service.principal("alice")) is None
    code, out, err = run(["user", "list", "--json"], data)
    assert json.loads(out)[0]["name"] == "alice"
    code, out, err = run(["user", "list"], data)
    assert any(line.split()[:3] == ["alice", "user", "disabled"] for line in out.splitlines())
    code, out, err = run(["user", "roles", "alice", "--role", "admin"], data)
    assert code == 1 and "no such account" in err  # a disabled account keeps its roles
    code, out, err = run(["user", "enable", "alice"], data)
    assert code == 0, err
    assert service.verify_credentials("alice", "alice-password") == principal
    assert asyncio.run(service.principal("alice")) == principal
    code, out, err = run(["user", "disable", "ghost"], data)
    assert code == 1 and "no such account" in err
    engine.dispose()


@dataclass(frozen=True)
class _CountingHashing(PasswordHashing):
    """The real (cheap) argon2 hashing, counting how many verifications run at once."""

    seen: list[int] = field(default_factory=lambda: [0, 0])  # [running, most at once]
    guard: threading.Lock = field(default_factory=threading.Lock)

    def verify_or_dummy(self, password_hash: str | None, password: str) -> bool:
        with self.guard:
            self.seen[0] += 1
            self.seen[1] = max(self.seen)
        try:
            time.sleep(0.05)  # long enough for the others to start if they were allowed to
            return super().verify_or_dummy(password_hash, password)
        finally:
            with self.guard:
                self.seen[0] -= 1


def test_one_password_verification_at_a_time(tmp_path: Path) -> None:
    """argon2id holds its memory cost while it verifies: logins of different users (each its
    own lock) verify one after the other in a process, not at once (issue #18: peak memory);
    all of them still succeed and a wrong password still fails."""
    engine = create_engine(sqlite_url(tmp_path))
    migrate(engine)
    hashing = _CountingHashing(PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    service = AuthService(SqlAccountStore(Database(engine)), hashing)
    names = [f"user{i}" for i in range(4)]
    for name in names:
        service.add_user(name, f"{name}-password", Role.RELENG)

    async def logins() -> list[object]:
        return await asyncio.gather(
            *(service.login(n, f"{n}-password", "127.0.0.1") for n in names),
            service.login("nobody", "wrong-password", "127.0.0.1"), return_exceptions=True)

    try:
        results = asyncio.run(logins())
    finally:
        engine.dispose()
    assert [r.name for r in results[:4] if isinstance(r, Principal)] == names
    assert isinstance(results[4], InvalidCredentials)
    assert hashing.seen == [0, 1]
