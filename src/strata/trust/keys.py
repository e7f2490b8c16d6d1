"""Release keys: ECDSA P-256 (NIST, what cosign and containers/image verify), from
``cryptography``.

The private key is kept only encrypted (PKCS#8 ``ENCRYPTED PRIVATE KEY`` PEM, the library's
best available encryption: scrypt-derived AES-256) with the operator's signing passphrase;
the public key as a ``PUBLIC KEY`` (SubjectPublicKeyInfo) PEM, the form ``cosign.pub`` and
``policy.json``'s ``keyPath``/``keyData`` take. A key is named by its ``key_id``: the sha256
of its public key's DER bytes (hex).

Nothing here logs, and :class:`Passphrase` never shows its value in a ``repr``.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

PASSPHRASE_ENV = "STRATA_SIGNING_PASSPHRASE"
MIN_PASSPHRASE = 12


class KeyProblem(Exception):
    """A key cannot be made, read or used (wrong passphrase, damaged PEM)."""


@dataclass(frozen=True)
class Passphrase:
    """The signing passphrase (bytes); its value never appears in a ``repr`` or a log."""

    value: bytes = field(repr=False)
    source: str = "memory"

    def __post_init__(self) -> None:
        if len(self.value) < MIN_PASSPHRASE:
            raise KeyProblem(f"the signing passphrase ({self.source}) is shorter than "
                            f"{MIN_PASSPHRASE} bytes")

    @classmethod
    def from_file(cls, path: Path) -> Passphrase:
        """The first line of ``path`` (a trailing newline is not part of it)."""
        try:
            text = path.read_bytes()
        except OSError as exc:
            raise KeyProblem(f"cannot read the signing passphrase file {path}: "
                            f"{exc.strerror}") from None
        return cls(text.splitlines()[0] if text.strip() else b"", f"file {path}")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Passphrase | None:
        value = (os.environ if environ is None else environ).get(PASSPHRASE_ENV)
        return None if not value else cls(value.encode(), f"${PASSPHRASE_ENV}")

    @classmethod
    def generated_in(cls, path: Path) -> Passphrase:
        """The passphrase kept in ``path`` (owner-only), created at random if absent: the
        server's fallback when the operator gives none. Created atomically (a temporary file
        linked into place), so concurrent first starts agree on one."""
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            secret = base64.urlsafe_b64encode(os.urandom(32))
            temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, secret + b"\n")
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                os.link(temp, path)  # fails if another process made it first: use that one
            except FileExistsError:
                pass
            finally:
                os.unlink(temp)
        return cls.from_file(path)


def key_id(public_pem: str) -> str:
    """sha256 (hex) of the public key's DER (SubjectPublicKeyInfo) bytes."""
    public = serialization.load_pem_public_key(public_pem.encode())
    der = public.public_bytes(serialization.Encoding.DER,
                              serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


@dataclass(frozen=True)
class SealedKey:
    """A release key as stored: public PEM, encrypted private PEM, and its id."""

    key_id: str
    public_pem: str
    private_pem: str = field(repr=False)


def generate(passphrase: Passphrase) -> SealedKey:
    """A new P-256 key pair, the private half encrypted with ``passphrase``."""
    private = ec.generate_private_key(ec.SECP256R1())
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM,
        serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase.value)).decode()
    return SealedKey(key_id(public_pem), public_pem, private_pem)


class SigningKey:
    """An opened (decrypted) release key: signs payloads, ECDSA over SHA-256, DER."""

    def __init__(self, sealed: SealedKey, passphrase: Passphrase) -> None:
        try:
            private = serialization.load_pem_private_key(sealed.private_pem.encode(),
                                                         passphrase.value)
        except (ValueError, TypeError):
            raise KeyProblem(f"cannot open release key {sealed.key_id[:12]}: wrong signing "
                            "passphrase or damaged key") from None
        if not isinstance(private, ec.EllipticCurvePrivateKey) or not isinstance(
                private.curve, ec.SECP256R1):
            raise KeyProblem(f"release key {sealed.key_id[:12]} is not an ECDSA P-256 key")
        self.key_id = sealed.key_id
        self.public_pem = sealed.public_pem
        self._private = private

    def sign(self, payload: bytes) -> bytes:
        """The DER-encoded ECDSA signature of ``payload`` (SHA-256)."""
        return self._private.sign(payload, ec.ECDSA(hashes.SHA256()))

    def __repr__(self) -> str:
        return f"SigningKey({self.key_id[:12]})"


def verify(public_pem: str, payload: bytes, signature: bytes) -> bool:
    """Whether ``signature`` (DER) is a valid ECDSA/SHA-256 signature of ``payload``."""
    public = serialization.load_pem_public_key(public_pem.encode())
    if not isinstance(public, ec.EllipticCurvePublicKey):
        return False
    try:
        public.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True
