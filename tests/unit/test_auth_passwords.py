"""argon2id password hashing, dummy verification and robot secrets."""

from __future__ import annotations

import hmac
import re
from typing import Literal

import pytest
from argon2 import PasswordHasher, Type

from strata.auth.passwords import (
    MAX_PASSWORD_BYTES,
    ROBOT_SECRET_PREFIX,
    PasswordHashing,
    hash_robot_secret,
    is_robot_secret,
    new_robot_secret,
    verify_robot_secret,
)


def _cheap(type: Type = Type.ID) -> PasswordHasher:
    """Minimal argon2 cost so the suite stays fast; production uses the RFC 9106 default."""
    return PasswordHasher(time_cost=1, memory_cost=8, parallelism=1, type=type)


class CountingHasher(PasswordHasher):
    """Records every hash that verify() runs against (to prove equal work)."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=8, parallelism=1)
        self.verified: list[str] = []

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        self.verified.append(hash if isinstance(hash, str) else hash.decode())
        return super().verify(hash, password)


@pytest.fixture
def hashing() -> PasswordHashing:
    return PasswordHashing(_cheap())


def test_hash_is_argon2id_and_verifies(hashing: PasswordHashing) -> None:
    stored = hashing.hash("correct horse")
    assert stored.startswith("$argon2id$")
    assert hashing.verify(stored, "correct horse")
    assert not hashing.verify(stored, "correct horse ")
    assert not hashing.verify(stored, "Correct horse")
    assert hashing.hash("correct horse") != stored  # salted


def test_default_hasher_is_argon2id() -> None:
    default = PasswordHashing()
    assert default.hasher.type is Type.ID
    assert default.hash("pw").startswith("$argon2id$")


def test_verify_or_dummy_for_unknown_user_does_the_same_work() -> None:
    hasher = CountingHasher()
    hashing = PasswordHashing(hasher)
    stored = hashing.hash("s3cret")
    real_work = "$argon2id$v=19$m=8,t=1,p=1$"
    attempts: list[tuple[str | None, str, bool]] = [
        (stored, "s3cret", True),
        (stored, "wrong", False),
        (None, "s3cret", False),  # unknown user
        (None, "", False),
        ("garbage", "s3cret", False),  # corrupt stored hash
        ("$argon2id$garbage", "s3cret", False),
        (stored, "", False),
    ]
    for stored_hash, password, expected in attempts:
        hasher.verified.clear()
        assert hashing.verify_or_dummy(stored_hash, password) is expected
        # Exactly one full argon2 verification with the production parameters,
        # whether or not the user exists.
        assert [h for h in hasher.verified if h.startswith(real_work)] == [hasher.verified[-1]], (
            stored_hash,
            password,
        )


def test_bad_passwords(hashing: PasswordHashing) -> None:
    with pytest.raises(ValueError):
        hashing.hash("")
    with pytest.raises(ValueError):
        hashing.hash("x" * (MAX_PASSWORD_BYTES + 1))
    assert hashing.hash("é" * (MAX_PASSWORD_BYTES // 2)).startswith("$argon2id$")
    stored = hashing.hash("pw")
    assert not hashing.verify(stored, "")
    assert not hashing.verify(stored, "x" * (MAX_PASSWORD_BYTES + 1))
    assert not hashing.verify_or_dummy(stored, None)  # type: ignore[arg-type]


def test_needs_rehash(hashing: PasswordHashing) -> None:
    current = hashing.hash("pw")
    assert not hashing.needs_rehash(current)
    stronger = PasswordHashing(PasswordHasher(time_cost=2, memory_cost=16, parallelism=1))
    assert stronger.needs_rehash(current)
    argon2i = _cheap(Type.I).hash("pw")
    assert hashing.needs_rehash(argon2i)
    assert hashing.verify(argon2i, "pw")  # still accepted, so it can be upgraded on login
    assert hashing.needs_rehash("not a hash")


def test_robot_secret_format_and_uniqueness() -> None:
    secrets = {new_robot_secret() for _ in range(50)}
    assert len(secrets) == 50
    for secret in secrets:
        assert secret.startswith(ROBOT_SECRET_PREFIX)
        body = secret.removeprefix(ROBOT_SECRET_PREFIX)
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", body)  # 32 bytes, URL-safe, unpadded
        assert is_robot_secret(secret)
    assert not is_robot_secret("hunter2")


def test_robot_secret_hash_and_verify() -> None:
    secret = new_robot_secret()
    stored = hash_robot_secret(secret)
    assert re.fullmatch(r"[0-9a-f]{64}", stored)
    assert secret not in stored
    assert hash_robot_secret(secret) == stored  # deterministic: usable as a lookup key
    assert verify_robot_secret(secret, stored)
    assert not verify_robot_secret(secret + "x", stored)
    assert not verify_robot_secret(new_robot_secret(), stored)
    assert not verify_robot_secret(secret, stored.upper())
    assert not verify_robot_secret(secret, "")
    assert not verify_robot_secret(secret, "é" * 64)
    assert not verify_robot_secret(secret, None)  # type: ignore[arg-type]


def test_robot_secret_comparison_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    secret = new_robot_secret()
    assert verify_robot_secret(secret, hash_robot_secret(secret))
    assert len(calls) == 1
