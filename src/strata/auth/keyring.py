"""The token-signing keys every node shares, kept in the database, sealed with the server's
secret key, and rotated.

Where things are:

- the signing keys: rows of the store (:class:`SigningKeyStore`, SQL in
  :mod:`strata.meta.authkey_store`), each an EC P-256 private key as PEM sealed with the
  server's secret key (:class:`~strata.auth.secretbox.SecretBox`, Fernet), named by its
  libtrust ``kid``. One key is *active* (it signs); *retired* keys only verify, for
  :data:`RETIRED_KEYS_VERIFY` seconds after they were retired (longer than any token lives:
  a token signed just before a rotation keeps working until it expires), then they are
  forgotten;
- the secret key: ``--secret-key-file PATH`` (``$STRATA_SECRET_KEY_FILE``), which every node
  of a cluster is given (a deployment setting, like the database password), else
  ``DATA/auth/webhook-key``, created on the first start (one node: nothing to configure). The
  database alone opens nothing: a stolen backup holds only sealed keys.

What a node does with them (:class:`KeyRing`): it signs and verifies with the keys it loaded
last and looks again when they are older than :data:`REFRESH_SECONDS` (so a rotation, or a
key dropped, reaches every node within that time without a restart); a token naming a key it
does not hold makes it look at once (at most once a second), so a token signed by a node that
already rotated is accepted everywhere.

The first start of a node that kept its key in ``DATA/auth/signing-key.pem`` (before the keys
moved to the database) imports that key (active if the database has none yet, else retired:
its tokens still verify) and removes the file (:func:`ensure_signing_key`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from strata.auth.keys import (
    KeyFileError,
    SigningKeyStore,
    StoredKey,
    libtrust_key_id,
    load_signing_key,
)
from strata.auth.secretbox import SealError, SecretBox
from strata.auth.tokens import (
    MAX_TTL_SECONDS,
    Claims,
    TokenIssuer,
    TokenVerifier,
    UnknownKey,
)

__all__ = [
    "REFRESH_SECONDS",
    "RETIRED_KEYS_VERIFY",
    "KeyRing",
    "KeyRingError",
    "KeySet",
    "KeySource",
    "SigningKeyStore",
    "StoredKey",
    "auth_dir",
    "default_secret_key_path",
    "ensure_signing_key",
    "legacy_signing_key_path",
    "rotate_signing_key",
    "server_secret_box",
]

#: How long a node signs with the key it loaded before it looks for a newer one.
REFRESH_SECONDS = 10.0
#: How long a retired key still verifies: longer than any token lives (24 h at most), plus the
#: time nodes may go on signing with it before they see the rotation, plus clock leeway.
RETIRED_KEYS_VERIFY = MAX_TTL_SECONDS + 300.0
#: A token naming an unknown key makes a node reload its keys at most this often.
_UNKNOWN_KID_RELOAD = 1.0


class KeyRingError(Exception):
    """The signing keys cannot be used: none yet, or sealed with another secret key."""


def auth_dir(data_dir: Path) -> Path:
    return data_dir / "auth"


def legacy_signing_key_path(data_dir: Path) -> Path:
    """Where a node kept its signing key before the keys moved to the database."""
    return auth_dir(data_dir) / "signing-key.pem"


def default_secret_key_path(data_dir: Path) -> Path:
    """The server's secret key when no ``--secret-key-file`` is given (its name is from when
    it sealed webhook secrets only)."""
    return auth_dir(data_dir) / "webhook-key"


def server_secret_box(data_dir: Path, secret_key_file: Path | None, *,
                      create: bool = True) -> SecretBox:
    """The server's secret key: *secret_key_file* (which must exist: a cluster's nodes share
    it, so none may invent its own), else ``DATA/auth/webhook-key`` (created if *create*).
    Raises :class:`SealError` with a message for the operator."""
    if secret_key_file is not None:
        try:
            return SecretBox.load(secret_key_file)
        except FileNotFoundError:
            raise SealError(f"{secret_key_file}: no such secret key file (make one with "
                            "'strata auth new-secret-key FILE')") from None
    path = default_secret_key_path(data_dir)
    if create:
        auth_dir(data_dir).mkdir(parents=True, exist_ok=True, mode=0o700)
        return SecretBox.load_or_create(path)
    try:
        return SecretBox.load(path)
    except FileNotFoundError:
        raise SealError(f"{path}: no secret key (start strata serve once, or pass "
                        "--secret-key-file)") from None


def _pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode("ascii")


def _stored(box: SecretBox, key: ec.EllipticCurvePrivateKey, now: float,
            retired_at: float | None = None) -> StoredKey:
    return StoredKey(libtrust_key_id(key.public_key()), box.seal(_pem(key)), now, retired_at)


@dataclass(frozen=True)
class KeySet:
    """The keys a node uses: the one it signs with and every one it verifies with."""

    signing: ec.EllipticCurvePrivateKey = field(repr=False)
    verifying: tuple[ec.EllipticCurvePublicKey, ...] = field(repr=False)
    kids: tuple[str, ...]  # of ``verifying``; the signing key's first

    @classmethod
    def of(cls, signing: ec.EllipticCurvePrivateKey,
           others: Sequence[ec.EllipticCurvePublicKey] = ()) -> KeySet:
        verifying = (signing.public_key(), *others)
        return cls(signing, verifying, tuple(libtrust_key_id(k) for k in verifying))


class KeySource:
    """Reads the keys from the store and opens them with the secret key (each kid once)."""

    def __init__(self, store: SigningKeyStore, box: SecretBox, *,
                 clock: Callable[[], float] = time.time,
                 retention: float = RETIRED_KEYS_VERIFY) -> None:
        self._store = store
        self._box = box
        self._clock = clock
        self._retention = retention
        self._opened: dict[str, ec.EllipticCurvePrivateKey] = {}

    def load_sync(self) -> KeySet:
        return self._key_set(self._store.keys_sync())

    async def load(self) -> KeySet:
        return self._key_set(await self._store.keys())

    def _open(self, stored: StoredKey) -> ec.EllipticCurvePrivateKey:
        key = self._opened.get(stored.kid)
        if key is None:
            key = _open_key(self._box, stored)
            self._opened[stored.kid] = key
        return key

    def _key_set(self, rows: list[StoredKey]) -> KeySet:
        now = self._clock()
        active = [r for r in rows if r.retired_at is None]
        if not active:
            raise KeyRingError("the database holds no token-signing key yet (strata serve "
                               "creates one at start)")
        retired = [r for r in rows if r.retired_at is not None
                   and r.retired_at + self._retention > now]
        retired.sort(key=lambda r: -(r.retired_at or 0.0))
        others = [self._open(r).public_key() for r in retired]
        return KeySet.of(self._open(active[0]), others)


def _open_key(box: SecretBox, stored: StoredKey) -> ec.EllipticCurvePrivateKey:
    try:
        pem = box.open(stored.sealed)
    except SealError as exc:
        raise KeyRingError(
            f"token-signing key {stored.kid} in the database is sealed with secret key "
            f"{SecretBox.key_id_of(stored.sealed)}, but this node's secret key is "
            f"{box.key_id}: give every node the same secret key (--secret-key-file, or the "
            f"first node's DATA/auth/webhook-key) ({exc})") from None
    try:
        key = serialization.load_pem_private_key(pem.encode("ascii"), password=None)
    except (ValueError, TypeError) as exc:
        raise KeyRingError(f"token-signing key {stored.kid} in the database is damaged") \
            from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or \
            not isinstance(key.curve, ec.SECP256R1):
        raise KeyRingError(f"token-signing key {stored.kid} is not an EC P-256 key")
    return key


def ensure_signing_key(store: SigningKeyStore, box: SecretBox, legacy_file: Path | None,
                       now: float) -> list[str]:
    """At start: an active signing key in the store (the key of *legacy_file*, the
    ``signing-key.pem`` of a node from before, else a new one), every stored key opened with
    *box* (:class:`KeyRingError` otherwise). Returns what was done, for the log."""
    done: list[str] = []
    if legacy_file is not None and legacy_file.exists():
        done.append(_import_legacy(store, box, legacy_file, now))
    if not any(r.retired_at is None for r in store.keys_sync()):
        fresh = _stored(box, ec.generate_private_key(ec.SECP256R1()), now)
        if store.add(fresh):
            done.append(f"created the token-signing key {fresh.kid} in the database")
    KeySource(store, box, clock=lambda: now).load_sync()  # every key opens with this box
    return done


def _import_legacy(store: SigningKeyStore, box: SecretBox, path: Path, now: float) -> str:
    try:
        key = load_signing_key(path)
    except KeyFileError as exc:
        raise KeyRingError(str(exc)) from None
    rows = store.keys_sync()
    kid = libtrust_key_id(key.public_key())
    if kid in {r.kid for r in rows}:
        state = "already there"
    elif not any(r.retired_at is None for r in rows) and store.add(_stored(box, key, now)):
        state = "active"
    else:  # the database has a signing key already: this one still verifies its tokens
        store.add(_stored(box, key, now, retired_at=now))
        state = "retired: the tokens it signed still verify"
    path.unlink()
    return (f"imported the token-signing key {path} into the database (key {kid}, {state}) "
            "and removed the file")


def rotate_signing_key(store: SigningKeyStore, box: SecretBox, now: float, *,
                       drop_old: bool = False) -> tuple[str, list[str]]:
    """A new active key; the old one retired (it verifies the tokens it signed until they
    expire), or with *drop_old* every earlier key forgotten at once (their tokens stop
    working: for a key that may have leaked). Returns the new kid and the retired/dropped."""
    KeySource(store, box, clock=lambda: now).load_sync()  # refuse to rotate blind
    fresh = _stored(box, ec.generate_private_key(ec.SECP256R1()), now)
    forget_before = None if drop_old else now - RETIRED_KEYS_VERIFY
    return fresh.kid, store.rotate(fresh, forget_before)


class KeyRing:
    """One node's (one worker's) issuer and verifier, following the keys in the store.

    Built from a :class:`KeySet` (tests: one fixed key) and, for a server, the *source* it
    reloads from: every :data:`REFRESH_SECONDS` before signing, and at once (at most once a
    second) for a token naming an unknown key. The verifier, with its cache of verified
    tokens, is kept while the set of keys stays the same.
    """

    def __init__(self, keys: KeySet, *, issuer_name: str, audience: str, ttl_seconds: int,
                 source: KeySource | None = None, refresh_seconds: float = REFRESH_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._issuer_name = issuer_name
        self._audience = audience
        self._ttl = ttl_seconds
        self._source = source
        self._refresh = refresh_seconds
        self._clock = clock
        self._lock = asyncio.Lock()
        self._loaded_at = clock()
        self._kids: tuple[str, ...] = ()
        self._install(keys)

    def _install(self, keys: KeySet) -> None:
        if keys.kids != self._kids:
            self.issuer = TokenIssuer(keys.signing, self._issuer_name, self._audience,
                                      self._ttl)
            self.verifier = TokenVerifier(keys.verifying, self._issuer_name, self._audience)
            self._kids = keys.kids

    @property
    def kids(self) -> tuple[str, ...]:
        """The kids this ring verifies, the signing key's first."""
        return self._kids

    async def reload(self) -> None:
        """Read the keys again now (no-op for a ring without a source)."""
        if self._source is None:
            return
        asked = self._clock()
        async with self._lock:
            if self._loaded_at > asked:  # another request loaded them while this one waited
                return
            keys = await self._source.load()
            self._loaded_at = self._clock()
            self._install(keys)

    def _stale(self) -> bool:
        return self._source is not None and self._clock() - self._loaded_at >= self._refresh

    async def current_issuer(self) -> TokenIssuer:
        """The issuer of the active key, looked up again if the last look is older than the
        refresh interval."""
        if self._stale():
            await self.reload()
        return self.issuer

    async def verify(self, token: str, now: int) -> Claims:
        """The verified claims of *token* (:class:`~strata.auth.tokens.TokenInvalid`
        otherwise). The keys are looked up again when the last look is older than the
        refresh interval (so a key dropped by ``rotate-keys --drop-old`` stops verifying
        within it), and at once for a key this ring does not know yet."""
        if self._stale():
            await self.reload()
        try:
            return self.verifier.verify(token, now)
        except UnknownKey:
            if self._source is None or self._clock() - self._loaded_at < _UNKNOWN_KID_RELOAD:
                raise
        await self.reload()
        return self.verifier.verify(token, now)
