"""Issuing and verifying the registry bearer tokens (ES256 JWTs).

Token layout follows the Distribution "Token Authentication Implementation":
header ``{"alg":"ES256","kid":<libtrust id>,"typ":"JWT"}`` and claims ``iss``,
``sub`` (``""`` for anonymous), ``aud`` (the ``service``), ``exp``, ``nbf``,
``iat``, ``jti`` and ``access: [{"type","name","actions"}]``; a token for an account also
carries ``uid`` (the account's stable id, never reused) and ``gen`` (its credential generation
when the token was issued), which the server compares with the account on every use (a token
for an account without them is parsed here but never honoured by the server).

Verification is deliberately narrower than generic JWT libraries:

* the header may only contain ``alg``, ``kid`` and ``typ``; ``alg`` must be
  exactly ``ES256`` (so ``none``, ``HS256`` -- including HMAC keyed with the
  public key PEM -- and every other algorithm are refused before any key is
  touched), ``kid`` must name one of the trusted keys, ``typ`` if present must
  be ``JWT``; ``crit``, ``jku``, ``jwk``, ``x5u``, ``x5c``, ``b64`` … are refused;
* the signature is checked by PyJWT with the algorithm list pinned to ES256
  and the key chosen by us from ``kid`` (never from the token);
* the claims are parsed by us from the signed payload: duplicate JSON keys,
  ``NaN``/``Infinity``, non-integer times and malformed ``access`` entries
  are refused, every registered claim plus ``access`` is required, and the
  time checks use the caller's ``now`` (no hidden clock).

Only EC P-256 keys are supported (no RS256): strata signs its own tokens, and
a single algorithm leaves no room for algorithm-confusion attacks.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from strata.auth.keys import libtrust_key_id
from strata.auth.scope import WILDCARD, Scope, ScopeError, merge_scopes

__all__ = [
    "ALGORITHM",
    "Claims",
    "IssuedToken",
    "TokenInvalid",
    "TokenIssuer",
    "TokenVerifier",
    "UnknownKey",
]

ALGORITHM = "ES256"
DEFAULT_TTL_SECONDS = 300
#: Tokens whose signature verified, kept per process (least recently used go first), each
#: under the SHA-256 of the token (32 bytes instead of the ~700-byte token) with its claims:
#: ~0.6 KiB with one scope. A client presents its token for seconds to minutes, over one
#: connection, and a pull storm brings a new token per pull, so what is presented again is
#: the tokens of the pulls in flight: 512 covers more than a worker's connections in the
#: release-day storm (200 clients over two workers). 4096 entries keyed by the token held
#: ~5 MiB per worker of tokens nobody presents again (issue #18: peak PSS).
_VERIFIED_CACHE = 512
#: The spec: "a token should never be returned with less than 60 seconds to live".
MIN_TTL_SECONDS = 60
MAX_TTL_SECONDS = 24 * 3600
DEFAULT_LEEWAY_SECONDS = 30
#: Longest token accepted for verification (a token grows with its access list).
MAX_TOKEN_LENGTH = 16 * 1024
MAX_ACCESS_ENTRIES = 256

_ALLOWED_HEADER_KEYS = frozenset({"alg", "kid", "typ"})
_REQUIRED_CLAIMS = ("iss", "sub", "aud", "exp", "nbf", "iat", "jti", "access")


class TokenInvalid(Exception):
    """The bearer token must not be honoured; :attr:`reason` says why (safe to log)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _require_p256(key: ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey) -> None:
    if not isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        raise TypeError("token keys must be EC keys")
    if not isinstance(key.curve, ec.SECP256R1):
        raise ValueError(f"ES256 needs a P-256 key, not {key.curve.name}")


class UnknownKey(TokenInvalid):
    """The token names a signing key (``kid``) this verifier does not hold: perhaps one another
    node has just started signing with (:class:`strata.auth.keyring.KeyRing` looks again)."""


@dataclass(frozen=True)
class IssuedToken:
    """A freshly signed token and what the token endpoint reports about it."""

    token: str
    expires_in: int
    issued_at: int
    access: tuple[Scope, ...]

    @property
    def issued_at_rfc3339(self) -> str:
        """``issued_at`` as the RFC 3339 UTC string the token response carries."""
        return datetime.fromtimestamp(self.issued_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Claims:
    """The verified claim set of a bearer token."""

    issuer: str
    subject: str
    audience: tuple[str, ...]
    expires_at: int
    not_before: int
    issued_at: int
    jwt_id: str
    access: tuple[Scope, ...]
    account_uid: str | None = None
    generation: int | None = None

    @property
    def is_anonymous(self) -> bool:
        return self.subject == ""

    def allows(self, scope_type: str, name: str, action: str) -> bool:
        """True when an ``access`` entry for exactly (*scope_type*, *name*) grants *action*.

        As in Distribution, a granted ``*`` covers every action on that resource.
        """
        return any(
            scope.type == scope_type
            and scope.name == name
            and (action in scope.actions or WILDCARD in scope.actions)
            for scope in self.access
        )


@dataclass(frozen=True)
class TokenIssuer:
    """Signs bearer tokens with an EC P-256 key; *audience* is the registry ``service``."""

    private_key: ec.EllipticCurvePrivateKey = field(repr=False)
    issuer: str
    audience: str
    ttl_seconds: int = DEFAULT_TTL_SECONDS
    key_id: str = field(init=False)

    def __post_init__(self) -> None:
        _require_p256(self.private_key)
        if not isinstance(self.private_key, ec.EllipticCurvePrivateKey):
            raise TypeError("TokenIssuer needs a private key")
        if not self.issuer or not self.audience:
            raise ValueError("issuer and audience must be non-empty")
        if not MIN_TTL_SECONDS <= self.ttl_seconds <= MAX_TTL_SECONDS:
            raise ValueError(f"ttl_seconds must be between {MIN_TTL_SECONDS} and {MAX_TTL_SECONDS}")
        object.__setattr__(self, "key_id", libtrust_key_id(self.private_key.public_key()))

    def issue(self, subject: str, access: Sequence[Scope], now: int, *,
              uid: str | None = None, generation: int | None = None) -> IssuedToken:
        """Sign a token for *subject* (``""`` = anonymous) granting *access* at time *now*,
        bound to the account *uid* at credential *generation* (both required for an account).

        *access* must already be the granted set (see :mod:`strata.auth.policy`);
        scopes naming the same resource are merged, scopes without actions dropped.
        """
        if not isinstance(subject, str):
            raise TypeError("subject must be a string")
        if isinstance(now, bool) or not isinstance(now, int) or now < 0:
            raise ValueError("now must be a non-negative integer timestamp")
        if (uid is None) != (generation is None) or (uid is not None and not subject):
            raise ValueError("uid and generation go together, and only for an account")
        granted = tuple(s for s in merge_scopes(access) if s.actions)
        payload = {
            "iss": self.issuer,
            "sub": subject,
            "aud": self.audience,
            "exp": now + self.ttl_seconds,
            "nbf": now,
            "iat": now,
            "jti": secrets.token_urlsafe(18),
            "access": [s.to_access() for s in granted],
        }
        if uid is not None:
            payload["uid"] = uid
            payload["gen"] = generation
        token = jwt.encode(
            payload,
            self.private_key,
            algorithm=ALGORITHM,
            headers={"kid": self.key_id, "typ": "JWT"},
        )
        return IssuedToken(token, self.ttl_seconds, now, granted)


def _reject_constant(name: str) -> None:
    raise ValueError(f"non-finite number {name}")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _int_claim(payload: dict[str, Any], name: str) -> int:
    value = payload[name]
    if isinstance(value, bool) or not isinstance(value, int):
        raise TokenInvalid(f"claim {name} must be an integer")
    return value


def _str_claim(payload: dict[str, Any], name: str) -> str:
    value = payload[name]
    if not isinstance(value, str):
        raise TokenInvalid(f"claim {name} must be a string")
    return value


def _audience_claim(payload: dict[str, Any]) -> tuple[str, ...]:
    value = payload["aud"]
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise TokenInvalid("claim aud must be a string or a list of strings")


def _access_claim(payload: dict[str, Any]) -> tuple[Scope, ...]:
    value = payload["access"]
    if not isinstance(value, list) or len(value) > MAX_ACCESS_ENTRIES:
        raise TokenInvalid("claim access must be a list")
    try:
        return tuple(Scope.from_access(entry) for entry in value)
    except ScopeError as exc:
        raise TokenInvalid(f"malformed access entry: {exc}") from exc


@dataclass(frozen=True)
class TokenVerifier:
    """Verifies bearer tokens signed by any of *public_keys* (EC P-256, looked up by ``kid``)."""

    public_keys: Sequence[ec.EllipticCurvePublicKey]
    issuer: str
    audience: str
    leeway: int = DEFAULT_LEEWAY_SECONDS
    _by_kid: dict[str, ec.EllipticCurvePublicKey] = field(init=False, repr=False, compare=False)
    _jws: jwt.PyJWS = field(init=False, repr=False, compare=False)
    # Tokens whose signature and claims verified: a client presents the same token on every
    # request for minutes, and an ECDSA verify costs more than serving a manifest. The time
    # checks are redone on every use; only what cannot change (the signature over these
    # exact bytes) is remembered.
    _verified: OrderedDict[bytes, Claims] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        keys = tuple(self.public_keys)
        if not keys:
            raise ValueError("at least one public key is required")
        for key in keys:
            _require_p256(key)
            if not isinstance(key, ec.EllipticCurvePublicKey):
                raise TypeError("TokenVerifier needs public keys")
        if not self.issuer or not self.audience:
            raise ValueError("issuer and audience must be non-empty")
        if not 0 <= self.leeway <= 300:
            raise ValueError("leeway must be between 0 and 300 seconds")
        object.__setattr__(self, "public_keys", keys)
        object.__setattr__(self, "_by_kid", {libtrust_key_id(k): k for k in keys})
        object.__setattr__(self, "_jws", jwt.PyJWS(algorithms=[ALGORITHM]))
        object.__setattr__(self, "_verified", OrderedDict())

    def verify(self, token: str, now: int) -> Claims:
        """Return the claims of *token* at time *now*, or raise :class:`TokenInvalid`."""
        if not isinstance(token, str) or not token:
            raise TokenInvalid("empty token")
        if len(token) > MAX_TOKEN_LENGTH:
            raise TokenInvalid("token too large")
        if not token.isascii() or token.count(".") != 2:
            raise TokenInvalid("malformed token")
        seen = hashlib.sha256(token.encode("ascii")).digest()
        known = self._verified.get(seen)
        if known is not None:
            try:
                self._check(known, now)
            except TokenInvalid:
                del self._verified[seen]  # expired (or not valid yet): checked afresh if shown
                raise
            self._verified.move_to_end(seen)
            return known
        key = self._select_key(token)
        try:
            decoded = self._jws.decode_complete(token, key=key, algorithms=[ALGORITHM])
        except jwt.InvalidSignatureError as exc:
            raise TokenInvalid("bad signature") from exc
        except jwt.PyJWTError as exc:
            raise TokenInvalid(f"malformed token: {exc}") from exc
        claims = self._parse_claims(decoded["payload"])
        self._check(claims, now)
        self._verified[seen] = claims
        while len(self._verified) > _VERIFIED_CACHE:
            self._verified.popitem(last=False)
        return claims

    def _select_key(self, token: str) -> ec.EllipticCurvePublicKey:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenInvalid(f"malformed token header: {exc}") from exc
        alg = header.get("alg")
        if alg != ALGORITHM:
            raise TokenInvalid(f"algorithm {str(alg)[:20]!r} not allowed")
        extra = set(header) - _ALLOWED_HEADER_KEYS
        if extra:
            raise TokenInvalid(f"unexpected header parameters {sorted(extra)[:5]}")
        if header.get("typ", "JWT") != "JWT":
            raise TokenInvalid("unexpected token type")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise TokenInvalid("missing key id")
        key = self._by_kid.get(kid)
        if key is None:
            raise UnknownKey("unknown signing key")
        return key

    @staticmethod
    def _parse_claims(raw: bytes) -> Claims:
        try:
            payload = json.loads(
                raw, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant
            )
        except (ValueError, RecursionError) as exc:
            raise TokenInvalid(f"malformed claims: {exc}") from exc
        if not isinstance(payload, dict):
            raise TokenInvalid("claims must be a JSON object")
        missing = [name for name in _REQUIRED_CLAIMS if name not in payload]
        if missing:
            raise TokenInvalid(f"missing claims {missing}")
        jwt_id = _str_claim(payload, "jti")
        if not jwt_id:
            raise TokenInvalid("claim jti must not be empty")
        subject = _str_claim(payload, "sub")
        uid: str | None = None
        generation: int | None = None
        if "uid" in payload or "gen" in payload:  # bound to an account and a generation of it
            if "uid" not in payload or "gen" not in payload or not subject:
                raise TokenInvalid("claims uid and gen go together, for an account")
            uid = _str_claim(payload, "uid")
            generation = _int_claim(payload, "gen")
            if not uid:
                raise TokenInvalid("claim uid must not be empty")
        return Claims(
            issuer=_str_claim(payload, "iss"),
            subject=subject,
            audience=_audience_claim(payload),
            expires_at=_int_claim(payload, "exp"),
            not_before=_int_claim(payload, "nbf"),
            issued_at=_int_claim(payload, "iat"),
            jwt_id=jwt_id,
            access=_access_claim(payload),
            account_uid=uid,
            generation=generation,
        )

    def _check(self, claims: Claims, now: int) -> None:
        if claims.issuer != self.issuer:
            raise TokenInvalid("wrong issuer")
        if self.audience not in claims.audience:
            raise TokenInvalid("wrong audience")
        if now >= claims.expires_at + self.leeway:
            raise TokenInvalid("token expired")
        if claims.not_before > now + self.leeway:
            raise TokenInvalid("token not yet valid")
        if claims.issued_at > now + self.leeway:
            raise TokenInvalid("token issued in the future")
