"""SqlAccountStore on SQLite and PostgreSQL: accounts as values, the per-request stamp on the
hot-read path, every credential change a new generation, and a lost creation race answered
``AccountExists`` (the database's uniqueness error, through ``Database``'s ``Conflict``)."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from strata.auth.accounts import AccountExists, AccountKind, AccountNotFound, Stamp
from strata.auth.policy import Role
from strata.meta import schema as t
from strata.meta.account_store import SqlAccountStore
from strata.meta.database import Database
from support.clock import SettableClock as Clock


@pytest.fixture
def accounts(database: Database) -> SqlAccountStore:
    return SqlAccountStore(database)


async def test_accounts_stamps_and_generations(accounts: SqlAccountStore,
                                               clock: Clock) -> None:
    clock.now = 1000.0
    alice = accounts.create("alice", AccountKind.USER, roles=[Role.MAINTAINER],
                            images=["f25/b", "f25/a"], password_hash="h1")
    assert (alice.name, alice.kind, alice.roles, alice.images) == (
        "alice", AccountKind.USER, frozenset({Role.MAINTAINER}), frozenset({"f25/a", "f25/b"}))
    assert (alice.created_at, alice.updated_at, alice.revoked_at) == (1000.0, 1000.0, None)
    assert alice.password_hash == "h1" and len(alice.uid) == 32 and alice.generation == 1
    assert await accounts.stamp("alice") == Stamp(alice.uid, 1, True) == alice.stamp
    assert await accounts.load("alice") == alice == accounts.get("alice")
    assert await accounts.stamp("nobody") is None and await accounts.stamp("Not A Name") is None
    assert accounts.get("nobody") is None and await accounts.load("nobody") is None

    with pytest.raises(AccountExists):
        accounts.create("alice", AccountKind.ROBOT, roles=[Role.RELENG], secret_hash="s")
    with pytest.raises(ValueError, match="at least one image"):
        accounts.create("bob", AccountKind.USER, roles=[Role.MAINTAINER], password_hash="h")
    with pytest.raises(ValueError, match="password hash"):
        accounts.create("bob", AccountKind.USER, roles=[Role.RELENG], secret_hash="s")

    clock.now = 1010.0
    accounts.set_password_hash("alice", "h2", rehash=True)  # same password: tokens live on
    assert await accounts.stamp("alice") == Stamp(alice.uid, 1, True)
    accounts.set_password_hash("alice", "h3")
    assert await accounts.stamp("alice") == Stamp(alice.uid, 2, True)
    regranted = accounts.set_grants("alice", [Role.RELENG])
    assert regranted.roles == {Role.RELENG} and not regranted.images
    assert regranted.generation == 3 and regranted.updated_at == 1010.0
    accounts.set_user_active("alice", False)
    assert await accounts.stamp("alice") == Stamp(alice.uid, 4, False)
    with pytest.raises(AccountNotFound):
        accounts.set_grants("alice", [Role.ADMIN])  # a disabled account keeps its roles
    accounts.set_user_active("alice", True)
    assert await accounts.stamp("alice") == Stamp(alice.uid, 5, True)
    with pytest.raises(AccountNotFound):
        accounts.set_password_hash("ghost", "h")

    robot = accounts.create("builder", AccountKind.ROBOT, roles=[Role.RELENG],
                            secret_hash="a" * 64)
    assert accounts.find_robot("a" * 64) == robot
    accounts.revoke_robot("builder")
    assert accounts.find_robot("a" * 64) is None
    assert await accounts.stamp("builder") == Stamp(robot.uid, 2, False)
    with pytest.raises(AccountNotFound):
        accounts.revoke_robot("builder")
    # A revoked robot's name can be given to a new robot: a new account (uid), not the old one.
    again = accounts.create("builder", AccountKind.ROBOT, roles=[Role.RELENG],
                            secret_hash="b" * 64)
    assert again.uid != robot.uid and again.generation == 1 and again.active
    assert [a.name for a in accounts.accounts()] == ["alice", "builder"]


@pytest.mark.parametrize("backend", ["postgres"])  # SQLite writers take turns: no race
def test_a_lost_creation_race_is_account_exists(accounts: SqlAccountStore, database: Database,
                                                engine: sa.Engine) -> None:
    # Another node inserts "carol" and has not committed yet: this creation does not see the
    # row, its INSERT waits for the other transaction and then meets the unique name.
    with engine.connect() as other:
        trans = other.begin()
        other.execute(sa.insert(t.auth_accounts).values(
            name="carol", kind="user", password_hash="x", created_at=1.0, updated_at=1.0,
            uid="c" * 32, generation=1))
        outcome: list[BaseException | None] = []

        def create() -> None:
            try:
                accounts.create("carol", AccountKind.USER, roles=[Role.REVIEWER],
                                password_hash="h")
                outcome.append(None)
            except BaseException as exc:  # handed to the test thread
                outcome.append(exc)

        worker = threading.Thread(target=create)
        worker.start()
        worker.join(timeout=1.0)
        assert worker.is_alive()  # waiting for the other transaction
        trans.commit()
        worker.join(timeout=30)
    assert len(outcome) == 1 and isinstance(outcome[0], AccountExists)
    assert database.read_sync(lambda conn: conn.execute(
        sa.select(t.auth_accounts.c.uid).where(t.auth_accounts.c.name == "carol")).scalar()
    ) == "c" * 32
