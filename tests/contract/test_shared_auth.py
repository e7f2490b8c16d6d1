"""What the nodes of one database share for authentication (issue 17), on SQLite and
PostgreSQL: the token-signing keys (sealed, imported from a node's old key file, rotated) and
the failed-login budgets. Two ``Database`` objects on one database stand for two nodes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric import ec

from strata.auth.keyring import (
    RETIRED_KEYS_VERIFY,
    KeyRing,
    KeyRingError,
    KeySource,
    ensure_signing_key,
    rotate_signing_key,
)
from strata.auth.keys import libtrust_key_id, load_or_create_signing_key
from strata.auth.ratelimit import LoginLimits, rate_limit_key
from strata.auth.secretbox import SecretBox
from strata.auth.tokens import TokenInvalid, TokenIssuer
from strata.meta.authkey_store import SqlSigningKeyStore
from strata.meta.database import Database
from strata.meta.login_store import SqlLoginBudget
from strata.meta.schema_auth import auth_login_buckets, auth_signing_keys
from support.clock import SettableClock as Clock

ISS, AUD = "strata-token-issuer", "strata"


@pytest.fixture
def second(engine: sa.Engine, database_url: str, clock: Clock) -> Iterator[Database]:
    """Another node's connection to the same database."""
    db = Database(database_url, clock=clock)
    yield db
    db.close()


def ring(store: SqlSigningKeyStore, box: SecretBox, clock: Clock,
         mono: Clock | None = None) -> KeyRing:
    source = KeySource(store, box, clock=clock)
    return KeyRing(source.load_sync(), issuer_name=ISS, audience=AUD, ttl_seconds=300,
                   source=source, clock=mono or Clock(0.0))


def kid_of(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


def test_first_key_is_created_once_sealed_and_shared(
        database: Database, second: Database, clock: Clock) -> None:
    box = SecretBox.generate()
    a, b = SqlSigningKeyStore(database), SqlSigningKeyStore(second)
    done = ensure_signing_key(a, box, None, clock())
    assert len(done) == 1 and "created the token-signing key" in done[0]
    assert ensure_signing_key(b, box, None, clock()) == []  # the other node finds it
    [row] = a.keys_sync()
    assert row.retired_at is None and SecretBox.is_sealed(row.sealed)
    raw = database.read_sync(lambda c: c.execute(sa.select(auth_signing_keys)).all())
    assert "PRIVATE KEY" not in repr(raw)
    # a token signed on one node verifies on the other
    token = ring(a, box, clock).issuer.issue("", [], int(clock())).token
    assert ring(b, box, clock).verifier.verify(token, int(clock())).subject == ""


def test_two_nodes_racing_for_the_first_key_agree(database: Database, second: Database,
                                                   clock: Clock) -> None:
    box = SecretBox.generate()
    stores = [SqlSigningKeyStore(database), SqlSigningKeyStore(second)]

    async def both() -> list[list[str]]:
        return list(await asyncio.gather(*(
            asyncio.to_thread(ensure_signing_key, s, box, None, clock()) for s in stores)))

    results = asyncio.run(both())
    assert sorted(len(r) for r in results) == [0, 1]
    keys = stores[0].keys_sync()
    assert [k.retired_at for k in keys] == [None]  # one active key, whoever won
    assert {ring(s, box, clock).issuer.key_id for s in stores} == {keys[0].kid}


def test_another_secret_key_is_refused_with_a_clear_message(database: Database,
                                                             clock: Clock) -> None:
    store = SqlSigningKeyStore(database)
    ensure_signing_key(store, SecretBox.generate(), None, clock())
    other = SecretBox.generate()
    with pytest.raises(KeyRingError, match="give every node the same secret key") as info:
        ensure_signing_key(store, other, None, clock())
    assert other.key_id in str(info.value)
    with pytest.raises(KeyRingError):
        KeySource(store, other).load_sync()


def test_a_nodes_key_file_is_imported_and_its_tokens_stay_valid(
        database: Database, tmp_path: Path, clock: Clock) -> None:
    box = SecretBox.generate()
    store = SqlSigningKeyStore(database)
    path = tmp_path / "auth" / "signing-key.pem"
    old_key = load_or_create_signing_key(path)
    before = TokenIssuer(old_key, ISS, AUD).issue("", [], int(clock())).token
    done = ensure_signing_key(store, box, path, clock())
    assert not path.exists() and "imported" in done[0] and "active" in done[0]
    node = ring(store, box, clock)
    assert node.issuer.key_id == libtrust_key_id(old_key.public_key())
    assert node.verifier.verify(before, int(clock())).subject == ""

    # a second node that had a key file of its own: imported as retired, its tokens verify
    other_path = tmp_path / "other" / "signing-key.pem"
    other_key = load_or_create_signing_key(other_path)
    theirs = TokenIssuer(other_key, ISS, AUD).issue("", [], int(clock())).token
    done = ensure_signing_key(store, box, other_path, clock())
    assert "retired: the tokens it signed still verify" in done[0] and not other_path.exists()
    node = ring(store, box, clock)
    assert node.issuer.key_id == libtrust_key_id(old_key.public_key())
    for token in (before, theirs):
        assert node.verifier.verify(token, int(clock())).subject == ""


def test_rotation_old_tokens_verify_until_expiry_and_drop_old_ends_them(
        database: Database, second: Database, clock: Clock) -> None:
    box = SecretBox.generate()
    a, b = SqlSigningKeyStore(database), SqlSigningKeyStore(second)
    ensure_signing_key(a, box, None, clock())
    mono_a, mono_b = Clock(0.0), Clock(0.0)
    node_a, node_b = ring(a, box, clock, mono_a), ring(b, box, clock, mono_b)
    old_kid = node_a.issuer.key_id
    old = node_a.issuer.issue("", [], int(clock())).token

    new_kid, retired = rotate_signing_key(b, box, clock())
    assert retired == [old_kid] and new_kid != old_kid

    async def scenario() -> None:
        # node a still signs with the old key until its refresh interval passes
        assert (await node_a.current_issuer()).key_id == old_kid
        mono_a.advance(10.0)
        fresh = (await node_a.current_issuer()).issue("", [], int(clock())).token
        assert kid_of(fresh) == new_kid
        # node b has not looked yet: the unknown kid makes it look at once
        mono_b.advance(1.0)
        assert (await node_b.verify(fresh, int(clock()))).subject == ""
        assert (await node_b.verify(old, int(clock()))).subject == ""  # old key verifies
        # a forged kid makes it look at most once a second
        with pytest.raises(TokenInvalid, match="unknown signing key"):
            await node_b.verify(TokenIssuer(ec.generate_private_key(ec.SECP256R1()), ISS,
                                            AUD).issue("", [], int(clock())).token,
                                int(clock()))

        # the retired key is forgotten once no token it signed can be alive
        clock.advance(RETIRED_KEYS_VERIFY + 1)
        mono_a.advance(10.0)
        await node_a.current_issuer()
        assert node_a.kids == (new_kid,)

        # --drop-old: every earlier key stops verifying at the next look
        mono_a.advance(10.0)
        latest = (await node_a.current_issuer()).issue("", [], int(clock())).token
        newest_kid, dropped = rotate_signing_key(a, box, clock(), drop_old=True)
        assert dropped == sorted([new_kid, old_kid])
        assert [k.kid for k in a.keys_sync()] == [newest_kid]
        assert (await node_a.verify(latest, int(clock()))).subject == ""  # not looked yet
        mono_a.advance(10.0)
        with pytest.raises(TokenInvalid, match="unknown signing key"):
            await node_a.verify(latest, int(clock()))

    asyncio.run(scenario())


def test_failed_login_budgets_are_shared_by_nodes(database: Database, second: Database,
                                                  clock: Clock) -> None:
    limits = LoginLimits(per_user_burst=3, per_user_per_minute=6, per_ip_burst=5,
                         per_ip_per_minute=60)
    key = SecretBox.generate().subkey("login-buckets")
    a, b = SqlLoginBudget(database, limits, key), SqlLoginBudget(second, limits, key)
    alice, bob, ip = (rate_limit_key("10.0.0.1", "alice"), rate_limit_key("10.0.0.1", "bob"),
                      rate_limit_key("10.0.0.1", None))

    async def scenario() -> None:
        assert await a.retry_after(alice, ip) == 0
        for node in (a, b, a):  # three failures, spread over the nodes
            await node.failed(alice, ip)
        assert await b.retry_after(alice, ip) == 10  # 6/min: a token every 10 s
        assert await a.retry_after(alice, ip) == 10
        assert await a.retry_after(bob, ip) == 0  # another user from the same address
        await b.failed(bob, ip)
        await a.failed(bob, ip)
        assert await a.retry_after(bob, ip) == 1  # the address's budget (5) is spent
        clock.advance(10.0)
        assert await b.retry_after(alice, ip) == 0
        # nothing of the names is stored; full buckets are deleted by the next failure
        rows = database.read_sync(lambda c: c.execute(sa.select(auth_login_buckets)).all())
        assert len(rows) == 3 and not any("alice" in r.bucket or "10.0" in r.bucket
                                          for r in rows)
        clock.advance(limits.refill_seconds() + 1)
        await a.failed(bob, rate_limit_key("10.0.0.2", None))
        rows = database.read_sync(lambda c: c.execute(sa.select(auth_login_buckets)).all())
        assert len(rows) == 2

    asyncio.run(scenario())
