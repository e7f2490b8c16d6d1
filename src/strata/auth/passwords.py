"""Password hashes (argon2id) and robot secrets.

User passwords are hashed with argon2id through ``argon2-cffi``'s
:class:`~argon2.PasswordHasher` (default parameters: the RFC 9106
"low memory" profile).  :meth:`PasswordHashing.verify_or_dummy` verifies
against a dummy hash when the user does not exist, so a login attempt for an
unknown user costs the same argon2 work as one for a known user and the
response time does not reveal which accounts exist.

Robot secrets are high-entropy random strings (``strata_robot_`` + 32 random
bytes, URL-safe base64), so a plain SHA-256 is an adequate at-rest hash: it is
not brute-forceable, and being deterministic it can be used directly as an
indexed lookup key.  Comparison uses :func:`hmac.compare_digest`.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = [
    "MAX_PASSWORD_BYTES",
    "ROBOT_SECRET_PREFIX",
    "PasswordHashing",
    "hash_robot_secret",
    "is_robot_secret",
    "new_robot_secret",
    "verify_robot_secret",
]

#: Longer passwords are refused (hash) or never match (verify): bounds the work per attempt.
MAX_PASSWORD_BYTES = 1024
ROBOT_SECRET_PREFIX = "strata_robot_"
_ROBOT_SECRET_BYTES = 32


def _password_ok(password: str) -> bool:
    return isinstance(password, str) and 0 < len(password.encode("utf-8")) <= MAX_PASSWORD_BYTES


@dataclass(frozen=True)
class PasswordHashing:
    """argon2id hashing with a timing-equalising dummy verification.

    Construct once per process (it computes one dummy hash); pass a cheaper
    ``PasswordHasher`` in tests.
    """

    hasher: PasswordHasher = field(default_factory=PasswordHasher)
    _dummy_hash: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        dummy = self.hasher.hash(secrets.token_urlsafe(32))
        object.__setattr__(self, "_dummy_hash", dummy)

    def hash(self, password: str) -> str:
        """Hash *password*; raises ``ValueError`` for empty or over-long passwords."""
        if not _password_ok(password):
            raise ValueError(f"password must be 1..{MAX_PASSWORD_BYTES} bytes of UTF-8")
        return self.hasher.hash(password)

    def verify(self, password_hash: str, password: str) -> bool:
        """True when *password* matches *password_hash*; never raises for bad input."""
        return self.verify_or_dummy(password_hash, password)

    def verify_or_dummy(self, password_hash: str | None, password: str) -> bool:
        """Verify, or burn the same argon2 work on a dummy hash when there is no user.

        Returns False (after equivalent work) when *password_hash* is ``None``
        or unparsable, or when *password* is empty/over-long/not a string.
        """
        if (
            not isinstance(password_hash, str)
            or not password_hash.startswith("$argon2")
            or not _password_ok(password)
        ):
            self._burn()
            return False
        try:
            return self.hasher.verify(password_hash, password)
        except VerifyMismatchError:
            return False
        except (InvalidHashError, VerificationError):
            # Unparsable stored hash: argon2 bailed out early, so do the work anyway.
            self._burn()
            return False

    def _burn(self) -> None:
        with contextlib.suppress(VerificationError):
            self.hasher.verify(self._dummy_hash, "not the password")

    def needs_rehash(self, password_hash: str) -> bool:
        """True when *password_hash* was made with other parameters (or is unparsable)."""
        try:
            return self.hasher.check_needs_rehash(password_hash)
        except (InvalidHashError, ValueError):
            return True


def new_robot_secret() -> str:
    """A fresh robot secret: ``strata_robot_`` + 32 random bytes (URL-safe base64)."""
    return ROBOT_SECRET_PREFIX + secrets.token_urlsafe(_ROBOT_SECRET_BYTES)


def is_robot_secret(candidate: str) -> bool:
    """True when *candidate* looks like a robot secret (routes Basic auth to robot lookup)."""
    return isinstance(candidate, str) and candidate.startswith(ROBOT_SECRET_PREFIX)


def hash_robot_secret(secret: str) -> str:
    """The at-rest form of a robot secret: lowercase hex SHA-256 of its UTF-8 bytes."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def verify_robot_secret(secret: str, stored_hash: str) -> bool:
    """Constant-time comparison of ``hash_robot_secret(secret)`` with *stored_hash*."""
    if not isinstance(secret, str) or not isinstance(stored_hash, str):
        return False
    return hmac.compare_digest(
        hash_robot_secret(secret).encode("ascii"), stored_hash.encode("utf-8")
    )
