"""The token-signing key: an EC P-256 private key kept as PEM in the data dir.

The key id placed in the JWT ``kid`` header is Docker's *libtrust* key id:
SHA-256 of the DER ``SubjectPublicKeyInfo``, truncated to 240 bits, base32
encoded and split into 12 groups of 4 characters joined by ``:``, e.g.
``PYYO:TEWU:V7JH:26JV:AQTZ:LJC3:SXVJ:XGHA:34F2:2LAQ:ZRMK:Z7Q6``.  This is what
``docker/libtrust`` and CNCF Distribution compute for keys from a
``rootcertbundle``, so a stock Distribution registry can be pointed at
strata's token endpoint.  (An RFC 7638 JWK thumbprint would serve strata
alone equally well, but buys no interoperability.)

Key file rules:

* created with mode ``0600`` in a temporary file in the same directory,
  fsync'ed, then published with ``link()`` -- an atomic, *non-clobbering*
  rename: if two processes race, the loser discards its key and loads the
  winner's, so all processes sign with the same key.  Filesystems without
  hard links fall back to ``rename()``.
* refused on load (:class:`KeyFileError`) if group or others have any
  permission bit, if it is not PEM, or if it is not an EC P-256 key.

The key file is how a node kept its key before the keys moved to the database; a server
imports it (:func:`strata.auth.keyring.ensure_signing_key`). :class:`StoredKey` and
:class:`SigningKeyStore` are the keys as the database keeps them (sealed), and what
:mod:`strata.auth.keyring` needs of the store (:mod:`strata.meta.authkey_store`).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

__all__ = [
    "KeyFileError",
    "SigningKeyStore",
    "StoredKey",
    "libtrust_key_id",
    "load_or_create_signing_key",
    "load_signing_key",
    "public_jwk",
]


class KeyFileError(Exception):
    """The signing key file is unusable (bad permissions, format or key type)."""


def libtrust_key_id(public_key: ec.EllipticCurvePublicKey) -> str:
    """Docker libtrust key id of *public_key* (12 ``:``-joined groups of 4 base32 chars)."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode("ascii")
    return ":".join(encoded[i : i + 4] for i in range(0, len(encoded), 4))


def _b64url_uint(value: int, size: int) -> str:
    return base64.urlsafe_b64encode(value.to_bytes(size, "big")).rstrip(b"=").decode("ascii")


def public_jwk(public_key: ec.EllipticCurvePublicKey) -> dict[str, str]:
    """The public JWK (for a JWKS document) with ``kid`` = libtrust key id."""
    _require_p256(public_key.curve)
    numbers = public_key.public_numbers()
    return {
        "kty": "EC",
        "crv": "P-256",
        "alg": "ES256",
        "use": "sig",
        "kid": libtrust_key_id(public_key),
        "x": _b64url_uint(numbers.x, 32),
        "y": _b64url_uint(numbers.y, 32),
    }


def _require_p256(curve: ec.EllipticCurve) -> None:
    if not isinstance(curve, ec.SECP256R1):
        raise KeyFileError(f"signing key must be EC P-256, not {curve.name}")


def load_signing_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """Load the PEM private key at *path*; raises ``FileNotFoundError`` if absent."""
    with open(path, "rb") as handle:
        mode = os.fstat(handle.fileno()).st_mode
        if not stat.S_ISREG(mode):
            raise KeyFileError(f"{path}: not a regular file")
        if mode & 0o077:
            raise KeyFileError(
                f"{path}: permissions {stat.S_IMODE(mode):04o} are too open; "
                "the signing key must be readable by its owner only (chmod 600)"
            )
        data = handle.read(64 * 1024)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{path}: not an unencrypted PEM private key") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise KeyFileError(f"{path}: signing key must be an EC P-256 key")
    _require_p256(key.curve)
    return key


def _fsync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def load_or_create_signing_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """Load the signing key at *path*, creating it (mode 0600, atomically) if missing."""
    try:
        return load_signing_key(path)
    except FileNotFoundError:
        pass
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(pem)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp_name, path)
        except FileExistsError:
            # Another process won the race: use its key, not ours.
            return load_signing_key(path)
        except OSError:
            if path.exists():
                return load_signing_key(path)
            os.rename(tmp_name, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
    _fsync_directory(directory)
    return key


@dataclass(frozen=True)
class StoredKey:
    """A signing key as the store keeps it (sealed PEM)."""

    kid: str
    sealed: str = field(repr=False)
    created_at: float
    retired_at: float | None  # None: the active key


class SigningKeyStore(Protocol):
    """What the key ring needs of the database (:mod:`strata.meta.authkey_store`)."""

    def keys_sync(self) -> list[StoredKey]: ...
    async def keys(self) -> list[StoredKey]: ...

    def add(self, key: StoredKey) -> bool:
        """Insert *key* (active if its ``retired_at`` is None); False when a key with that kid
        exists, or an active key exists and *key* is active (another node won the race)."""
        ...

    def rotate(self, key: StoredKey, forget_before: float | None) -> list[str]:
        """In one transaction: retire the active key (``retired_at`` = *key*'s
        ``created_at``), make *key* the active one, and delete keys retired before
        *forget_before* (None: every retired key). Returns the kids retired or deleted."""
        ...
