"""Secrets the server must use again but nobody should read from the database: sealed with a
server key (Fernet: AES-128-CBC + HMAC-SHA256, from ``cryptography``).

The key is a file: ``--secret-key-file PATH`` (``$STRATA_SECRET_KEY_FILE``), else
``DATA/auth/webhook-key`` (mode 0600), created by the first ``strata serve`` (or offline
command) that needs it (see :func:`strata.auth.keyring.server_secret_box`). It seals webhook
secrets and the token-signing keys in the database. A sealed value is
``sealed:v1:<key id>:<Fernet token>``; the key id (the first 8 bytes of the key's SHA-256, in
hex) names the key that sealed it, so a node given another key says so instead of failing
obscurely. Several nodes on one database must share the key: each is given the same
``--secret-key-file`` (see ``docs/security.md``).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from strata.storage.private import write_private_file

__all__ = ["SealError", "SecretBox"]

_PREFIX = "sealed:v1:"


class SealError(ValueError):
    """A sealed value this key cannot open (another key, or damaged), or a bad key file."""


class SecretBox:
    def __init__(self, key: bytes) -> None:
        try:
            self._fernet = Fernet(key)
        except (ValueError, TypeError) as exc:
            raise SealError("not a Fernet key (32 url-safe base64-encoded bytes)") from exc
        self.key_id = hashlib.sha256(key.strip()).hexdigest()[:16]
        self._key = key.strip()

    @staticmethod
    def new_key() -> bytes:
        """A new random key (what a key file holds)."""
        return Fernet.generate_key()

    @classmethod
    def generate(cls) -> SecretBox:
        """A box with a new key kept only in memory (tests, open registries in one process)."""
        return cls(Fernet.generate_key())

    @classmethod
    def load(cls, path: Path) -> SecretBox:
        """The key at ``path``, which must be readable by its owner only."""
        with open(path, "rb") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            if not stat.S_ISREG(mode):
                raise SealError(f"{path}: not a regular file")
            if mode & 0o077:
                raise SealError(f"{path}: permissions {stat.S_IMODE(mode):04o} are too open; "
                                "the key must be readable by its owner only (chmod 600)")
            data = handle.read(1024)
        try:
            return cls(data.strip())
        except SealError as exc:
            raise SealError(f"{path}: {exc}") from None

    @classmethod
    def load_or_create(cls, path: Path) -> SecretBox:
        """The key at ``path``, created (mode 0600, atomically) if there is none yet."""
        if not path.exists():
            write_private_file(path, Fernet.generate_key() + b"\n")
        return cls.load(path)

    def subkey(self, purpose: str) -> bytes:
        """A 32-byte key for *purpose* derived from this key (HMAC-SHA256): the same on every
        node that shares the secret key, and telling nothing about it."""
        return hmac.new(self._key, b"strata-subkey\0" + purpose.encode(), hashlib.sha256).digest()

    @staticmethod
    def is_sealed(value: str) -> bool:
        return value.startswith(_PREFIX)

    @staticmethod
    def key_id_of(value: str | None) -> str | None:
        """The id of the key that sealed ``value`` (None: not sealed)."""
        if value is None or not value.startswith(_PREFIX):
            return None
        return value[len(_PREFIX):].partition(":")[0]

    def seal(self, plaintext: str) -> str:
        token = self._fernet.encrypt(plaintext.encode()).decode("ascii")
        return f"{_PREFIX}{self.key_id}:{token}"

    def open(self, value: str) -> str:
        """The plaintext of a sealed value (a value that was never sealed is returned as is:
        rows written before sealing existed, until the server seals them at start)."""
        if not self.is_sealed(value):
            return value
        key_id, _, token = value[len(_PREFIX):].partition(":")
        if key_id != self.key_id:
            raise SealError(f"sealed with key {key_id}, but this server's key is {self.key_id} "
                            "(every node needs the same DATA/auth/webhook-key, or "
                            "--secret-key-file)")
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode()
        except (InvalidToken, UnicodeError) as exc:
            raise SealError(f"a value sealed with key {key_id} does not open: damaged") from exc
