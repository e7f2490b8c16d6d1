"""Signing key file, token issuing and (hostile) token verification."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import stat
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from strata.auth import keys as keys_module
from strata.auth.keys import (
    KeyFileError,
    libtrust_key_id,
    load_or_create_signing_key,
    load_signing_key,
    public_jwk,
)
from strata.auth.policy import Principal, Role, grant
from strata.auth.scope import Scope, parse_scopes
from strata.auth.tokens import (
    _VERIFIED_CACHE,
    DEFAULT_LEEWAY_SECONDS,
    Claims,
    TokenInvalid,
    TokenIssuer,
    TokenVerifier,
)

NOW = 1_700_000_000
ISSUER = "strata-token"
AUDIENCE = "registry.example"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64_json(obj: object) -> str:
    return _b64(json.dumps(obj, separators=(",", ":")).encode())


def _int(b64: str) -> int:
    return int.from_bytes(base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4)), "big")


@pytest.fixture(scope="module")
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def other_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def issuer(key: ec.EllipticCurvePrivateKey) -> TokenIssuer:
    return TokenIssuer(key, ISSUER, AUDIENCE)


@pytest.fixture
def verifier(key: ec.EllipticCurvePrivateKey) -> TokenVerifier:
    return TokenVerifier([key.public_key()], ISSUER, AUDIENCE, leeway=30)


def _claims(**overrides: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "alice",
        "aud": AUDIENCE,
        "exp": NOW + 300,
        "nbf": NOW,
        "iat": NOW,
        "jti": "j1",
        "access": [{"type": "repository", "name": "a/b", "actions": ["pull"]}],
    }
    for name, value in overrides.items():
        if value is _DELETE:
            del claims[name]
        else:
            claims[name] = value
    return claims


_DELETE = object()


def _sign_bytes(key: ec.EllipticCurvePrivateKey, header: dict[str, Any], payload: bytes) -> str:
    """A correct ES256 signature over arbitrary header/payload bytes (no encoder checks)."""
    signing_input = f"{_b64_json(header)}.{_b64(payload)}"
    signature = jwt.get_algorithm_by_name("ES256").sign(signing_input.encode(), key)
    return f"{signing_input}.{_b64(signature)}"


def _sign(key: ec.EllipticCurvePrivateKey, claims: dict[str, Any], **headers: Any) -> str:
    """Sign arbitrary claims with our key: models tokens we might have issued with bad
    content (an attacker without the key cannot produce these at all)."""
    header: dict[str, Any] = {
        "alg": "ES256",
        "typ": "JWT",
        "kid": libtrust_key_id(key.public_key()),
    }
    header.update(headers)
    return _sign_bytes(key, header, json.dumps(claims).encode())


def _sign_raw(key: ec.EllipticCurvePrivateKey, payload: bytes) -> str:
    header = {"alg": "ES256", "typ": "JWT", "kid": libtrust_key_id(key.public_key())}
    return _sign_bytes(key, header, payload)


# ---------------------------------------------------------------------------
# keys.py


def test_key_is_created_with_mode_0600_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "data" / "auth" / "token-signing.pem"
    first = load_or_create_signing_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert isinstance(first.curve, ec.SECP256R1)
    second = load_or_create_signing_key(path)
    assert second.private_numbers() == first.private_numbers()
    assert os.listdir(path.parent) == [path.name]  # no temp file left behind


def test_key_creation_ignores_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        path = tmp_path / "k.pem"
        load_or_create_signing_key(path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_loose_permissions_are_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "k.pem"
    load_or_create_signing_key(path)
    path.chmod(mode)
    with pytest.raises(KeyFileError, match="too open"):
        load_or_create_signing_key(path)


def test_read_only_owner_mode_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    key = load_or_create_signing_key(path)
    path.chmod(0o400)
    assert load_signing_key(path).private_numbers() == key.private_numbers()


def _write_private(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    path.chmod(0o600)


def test_wrong_key_types_are_refused(tmp_path: Path) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    p384 = ec.generate_private_key(ec.SECP384R1())
    pkcs8 = (
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    for name, pem in [
        ("rsa.pem", rsa_key.private_bytes(*pkcs8)),
        ("p384.pem", p384.private_bytes(*pkcs8)),
    ]:
        path = tmp_path / name
        _write_private(path, pem)
        with pytest.raises(KeyFileError):
            load_or_create_signing_key(path)
    garbage = tmp_path / "garbage.pem"
    _write_private(garbage, b"not a key")
    with pytest.raises(KeyFileError):
        load_or_create_signing_key(garbage)


def test_losing_the_creation_race_adopts_the_winners_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "k.pem"
    winner = load_or_create_signing_key(path)
    real_load = keys_module.load_signing_key
    calls = {"n": 0}

    def first_load_misses(p: Path) -> ec.EllipticCurvePrivateKey:
        calls["n"] += 1
        if calls["n"] == 1:
            raise FileNotFoundError(p)  # the file appeared just after this check
        return real_load(p)

    monkeypatch.setattr(keys_module, "load_signing_key", first_load_misses)
    loser = load_or_create_signing_key(path)
    assert loser.private_numbers() == winner.private_numbers()
    assert os.listdir(tmp_path) == ["k.pem"]


def test_libtrust_key_id_matches_the_distribution_spec_vector() -> None:
    # Example key from the CNCF Distribution "Token Authentication Implementation" page.
    public = ec.EllipticCurvePublicNumbers(
        _int("m7zUpx3b-zmVE5cymSs64POG9QcyEpJaYCD82-549_Q"),
        _int("dU3biz8sZ_8GPB-odm8Wxz3lNDr1xcAQQPQaOcr1fmc"),
        ec.SECP256R1(),
    ).public_key()
    assert libtrust_key_id(public) == "PYYO:TEWU:V7JH:26JV:AQTZ:LJC3:SXVJ:XGHA:34F2:2LAQ:ZRMK:Z7Q6"


def test_public_jwk(key: ec.EllipticCurvePrivateKey) -> None:
    jwk = public_jwk(key.public_key())
    assert jwk["kty"] == "EC" and jwk["crv"] == "P-256" and jwk["alg"] == "ES256"
    assert jwk["kid"] == libtrust_key_id(key.public_key())
    loaded = jwt.PyJWK(jwk).key
    assert loaded.public_numbers() == key.public_key().public_numbers()


# ---------------------------------------------------------------------------
# Issuing


def test_issue_and_verify_round_trip(issuer: TokenIssuer, verifier: TokenVerifier) -> None:
    access = parse_scopes(["repository:f25/cockpit:pull,push registry:catalog:*"])
    issued = issuer.issue("alice", access, NOW)
    assert issued.expires_in == 300
    assert issued.issued_at == NOW
    assert issued.issued_at_rfc3339 == "2023-11-14T22:13:20Z"
    assert issued.access == access

    header = jwt.get_unverified_header(issued.token)
    assert header == {"alg": "ES256", "typ": "JWT", "kid": issuer.key_id}
    payload = json.loads(base64.urlsafe_b64decode(issued.token.split(".")[1] + "=="))
    assert payload["access"] == [
        {"type": "repository", "name": "f25/cockpit", "actions": ["pull", "push"]},
        {"type": "registry", "name": "catalog", "actions": ["*"]},
    ]
    assert (payload["iat"], payload["nbf"], payload["exp"]) == (NOW, NOW, NOW + 300)

    claims = verifier.verify(issued.token, NOW + 10)
    assert claims == Claims(
        issuer=ISSUER,
        subject="alice",
        audience=(AUDIENCE,),
        expires_at=NOW + 300,
        not_before=NOW,
        issued_at=NOW,
        jwt_id=payload["jti"],
        access=access,
    )
    assert not claims.is_anonymous


def test_jti_is_random(issuer: TokenIssuer) -> None:
    ids = {
        jwt.decode(issuer.issue("a", [], NOW).token, options={"verify_signature": False})["jti"]
        for _ in range(20)
    }
    assert len(ids) == 20


def test_issue_merges_scopes_and_drops_empty_ones(
    issuer: TokenIssuer, verifier: TokenVerifier
) -> None:
    issued = issuer.issue(
        "",
        [
            Scope.parse("repository:a:pull"),
            Scope.parse("repository:a:push"),
            Scope.parse("repository:b:"),
        ],
        NOW,
    )
    claims = verifier.verify(issued.token, NOW)
    assert claims.is_anonymous
    assert claims.access == (Scope("repository", "a", frozenset({"pull", "push"})),)


def test_issuer_validation(key: ec.EllipticCurvePrivateKey) -> None:
    with pytest.raises(ValueError):
        TokenIssuer(key, ISSUER, AUDIENCE, ttl_seconds=59)
    with pytest.raises(ValueError):
        TokenIssuer(key, "", AUDIENCE)
    with pytest.raises(ValueError):
        TokenIssuer(ec.generate_private_key(ec.SECP384R1()), ISSUER, AUDIENCE)
    with pytest.raises(ValueError):
        TokenIssuer(key, ISSUER, AUDIENCE).issue("a", [], -1)
    with pytest.raises(ValueError):
        TokenVerifier([], ISSUER, AUDIENCE)


# ---------------------------------------------------------------------------
# Claims.allows and the policy → token → registry chain


def test_token_for_repository_a_does_not_open_b(
    issuer: TokenIssuer, verifier: TokenVerifier
) -> None:
    token = issuer.issue("alice", [Scope.parse("repository:team/a:pull,push")], NOW).token
    claims = verifier.verify(token, NOW)
    assert claims.allows("repository", "team/a", "pull")
    assert claims.allows("repository", "team/a", "push")
    assert not claims.allows("repository", "team/b", "pull")
    assert not claims.allows("repository", "team/a/sub", "pull")
    assert not claims.allows("repository", "team", "pull")
    assert not claims.allows("registry", "team/a", "pull")
    assert not claims.allows("repository", "team/a", "delete")


def test_pull_token_does_not_allow_push(issuer: TokenIssuer, verifier: TokenVerifier) -> None:
    # A plain user asks for pull,push on a public image: the grant is pull only.
    requested = parse_scopes(["repository:f25/cockpit:pull,push"])
    granted = grant(Principal("bob"), requested)
    claims = verifier.verify(issuer.issue("bob", granted, NOW).token, NOW)
    assert claims.allows("repository", "f25/cockpit", "pull")
    assert not claims.allows("repository", "f25/cockpit", "push")


def test_maintainer_token_chain(issuer: TokenIssuer, verifier: TokenVerifier) -> None:
    alice = Principal("alice", frozenset({Role.MAINTAINER}), frozenset({"f25/cockpit"}))
    requested = parse_scopes(["repository:f25/cockpit:* repository:f25/other:pull,push"])
    claims = verifier.verify(issuer.issue("alice", grant(alice, requested), NOW).token, NOW)
    assert claims.allows("repository", "f25/cockpit", "push")
    assert not claims.allows("repository", "f25/cockpit", "delete")
    assert claims.allows("repository", "f25/other", "pull")
    assert not claims.allows("repository", "f25/other", "push")


def test_catalog_wildcard(issuer: TokenIssuer, verifier: TokenVerifier) -> None:
    granted = grant(Principal.anonymous(), parse_scopes(["registry:catalog:*"]))
    claims = verifier.verify(issuer.issue("", granted, NOW).token, NOW)
    assert claims.allows("registry", "catalog", "*")
    assert not claims.allows("repository", "catalog", "pull")


# ---------------------------------------------------------------------------
# Attacks on the verifier


def _unsigned(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    return f"{_b64_json(header)}.{_b64_json(claims)}.{_b64(signature)}"


def _reason(verifier: TokenVerifier, token: str, now: int = NOW) -> str:
    with pytest.raises(TokenInvalid) as info:
        verifier.verify(token, now)
    return info.value.reason


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE", ""])
def test_alg_none_is_refused(verifier: TokenVerifier, issuer: TokenIssuer, alg: str) -> None:
    header = {"alg": alg, "typ": "JWT", "kid": issuer.key_id}
    assert "not allowed" in _reason(verifier, _unsigned(header, _claims()))


def test_missing_alg_is_refused(verifier: TokenVerifier, issuer: TokenIssuer) -> None:
    assert "not allowed" in _reason(verifier, _unsigned({"kid": issuer.key_id}, _claims()))


def test_hs256_signed_with_the_public_key_pem_is_refused(
    verifier: TokenVerifier, key: ec.EllipticCurvePrivateKey, issuer: TokenIssuer
) -> None:
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "typ": "JWT", "kid": issuer.key_id}
    signing_input = f"{_b64_json(header)}.{_b64_json(_claims())}"
    for secret in (pem, pem.strip(), der, issuer.key_id.encode()):
        sig = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        token = f"{signing_input}.{_b64(sig)}"
        assert "not allowed" in _reason(verifier, token)


@pytest.mark.parametrize("alg", ["HS384", "HS512", "RS256", "PS256", "ES384", "ES512", "EdDSA"])
def test_other_algorithms_are_refused(
    verifier: TokenVerifier, issuer: TokenIssuer, alg: str
) -> None:
    header = {"alg": alg, "typ": "JWT", "kid": issuer.key_id}
    assert "not allowed" in _reason(verifier, _unsigned(header, _claims(), b"x" * 64))


def test_rs256_token_with_a_real_rsa_signature_is_refused(
    verifier: TokenVerifier, issuer: TokenIssuer
) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(_claims(), rsa_key, algorithm="RS256", headers={"kid": issuer.key_id})
    assert "not allowed" in _reason(verifier, token)


def test_token_signed_by_another_key_with_our_kid(
    verifier: TokenVerifier, other_key: ec.EllipticCurvePrivateKey, issuer: TokenIssuer
) -> None:
    token = jwt.encode(_claims(), other_key, algorithm="ES256", headers={"kid": issuer.key_id})
    assert _reason(verifier, token) == "bad signature"


def test_token_signed_by_another_key_with_its_own_kid(
    verifier: TokenVerifier, other_key: ec.EllipticCurvePrivateKey
) -> None:
    token = TokenIssuer(other_key, ISSUER, AUDIENCE).issue("a", [], NOW).token
    assert _reason(verifier, token) == "unknown signing key"


def test_missing_or_non_string_kid(
    verifier: TokenVerifier, key: ec.EllipticCurvePrivateKey
) -> None:
    token = jwt.encode(_claims(), key, algorithm="ES256")
    assert _reason(verifier, token) == "missing key id"
    assert "key id" in _reason(verifier, _sign(key, _claims(), kid=None)).lower()
    assert "key id" in _reason(verifier, _sign(key, _claims(), kid=7)).lower()


@pytest.mark.parametrize(
    "extra",
    [
        {"jku": "https://evil.example/jwks.json"},
        {"x5u": "https://evil.example/cert.pem"},
        {"x5c": ["MIIB"]},
        {"crit": ["exp"]},
        {"cty": "JWT"},
    ],
)
def test_unexpected_header_parameters_are_refused(
    verifier: TokenVerifier, key: ec.EllipticCurvePrivateKey, extra: dict[str, Any]
) -> None:
    header = {"alg": "ES256", "typ": "JWT", "kid": libtrust_key_id(key.public_key()), **extra}
    reason = _reason(verifier, _unsigned(header, _claims(), b"x" * 64))
    assert "header" in reason


def test_embedded_attacker_jwk_is_refused(
    verifier: TokenVerifier, other_key: ec.EllipticCurvePrivateKey, issuer: TokenIssuer
) -> None:
    # Classic "jwk header injection": attacker signs with its own key and embeds it.
    token = jwt.encode(
        _claims(),
        other_key,
        algorithm="ES256",
        headers={"kid": issuer.key_id, "jwk": public_jwk(other_key.public_key())},
    )
    assert "unexpected header" in _reason(verifier, token)


def test_b64_false_detached_payload_is_refused(
    verifier: TokenVerifier, key: ec.EllipticCurvePrivateKey
) -> None:
    header = {
        "alg": "ES256",
        "kid": libtrust_key_id(key.public_key()),
        "b64": False,
        "crit": ["b64"],
    }
    assert "header" in _reason(verifier, _unsigned(header, _claims(), b"x" * 64))


def test_wrong_typ_is_refused(verifier: TokenVerifier, key: ec.EllipticCurvePrivateKey) -> None:
    assert _reason(verifier, _sign(key, _claims(), typ="at+jwt")) == "unexpected token type"


def test_expired(verifier: TokenVerifier, issuer: TokenIssuer) -> None:
    token = issuer.issue("a", [], NOW).token
    exp = NOW + 300
    verifier.verify(token, exp + 29)  # within leeway
    assert _reason(verifier, token, exp + 30) == "token expired"
    assert _reason(verifier, token, exp + 10_000) == "token expired"
    strict = TokenVerifier(verifier.public_keys, ISSUER, AUDIENCE, leeway=0)
    strict.verify(token, exp - 1)
    assert _reason(strict, token, exp) == "token expired"


def test_not_yet_valid(verifier: TokenVerifier, key: ec.EllipticCurvePrivateKey) -> None:
    verifier.verify(_sign(key, _claims(nbf=NOW + 30)), NOW)  # within leeway
    token = _sign(key, _claims(nbf=NOW + 31))
    assert _reason(verifier, token) == "token not yet valid"
    verifier.verify(token, NOW + 1)


def test_issued_in_the_future(verifier: TokenVerifier, issuer: TokenIssuer) -> None:
    token = issuer.issue("a", [], NOW + 3600).token
    assert _reason(verifier, token) in {"token not yet valid", "token issued in the future"}
    only_iat_in_future = _claims(iat=NOW + 31)
    assert _reason(verifier, _sign(issuer.private_key, only_iat_in_future)) == (
        "token issued in the future"
    )
    verifier.verify(_sign(issuer.private_key, _claims(iat=NOW + 30)), NOW)  # within leeway


def test_wrong_audience(verifier: TokenVerifier, key: ec.EllipticCurvePrivateKey) -> None:
    assert _reason(verifier, _sign(key, _claims(aud="other-registry"))) == "wrong audience"
    assert _reason(verifier, _sign(key, _claims(aud=["a", "b"]))) == "wrong audience"
    assert "aud" in _reason(verifier, _sign(key, _claims(aud=[])))
    assert "aud" in _reason(verifier, _sign(key, _claims(aud=[AUDIENCE, 1])))
    # RFC 7519 audience arrays are fine when they contain us.
    assert verifier.verify(_sign(key, _claims(aud=["x", AUDIENCE])), NOW).audience == (
        "x",
        AUDIENCE,
    )


def test_token_for_another_service_from_the_same_issuer(
    key: ec.EllipticCurvePrivateKey, verifier: TokenVerifier
) -> None:
    other_service = TokenIssuer(key, ISSUER, "other.registry").issue("a", [], NOW).token
    assert _reason(verifier, other_service) == "wrong audience"


def test_wrong_issuer(verifier: TokenVerifier, key: ec.EllipticCurvePrivateKey) -> None:
    assert _reason(verifier, _sign(key, _claims(iss="evil"))) == "wrong issuer"
    token = TokenIssuer(key, "someone-else", AUDIENCE).issue("a", [], NOW).token
    assert _reason(verifier, token) == "wrong issuer"


@pytest.mark.parametrize("claim", ["iss", "sub", "aud", "exp", "nbf", "iat", "jti", "access"])
def test_missing_claims(
    verifier: TokenVerifier, key: ec.EllipticCurvePrivateKey, claim: str
) -> None:
    assert claim in _reason(verifier, _sign(key, _claims(**{claim: _DELETE})))


@pytest.mark.parametrize(
    "overrides",
    [
        {"exp": str(NOW + 300)},
        {"exp": float(NOW + 300)},
        {"exp": True},
        {"nbf": None},
        {"iat": [NOW]},
        {"sub": 1},
        {"iss": None},
        {"jti": ""},
        {"jti": 5},
        {"access": {"type": "repository"}},
        {"access": "repository:a:pull"},
        {"access": [{"type": "repository", "name": "../x", "actions": ["pull"]}]},
        {"access": [{"type": "repository", "name": "A/B", "actions": ["pull"]}]},
        {"access": [{"type": "repository", "name": "a", "actions": ["sudo"]}]},
        {"access": [{"type": "repository", "name": "a", "actions": "pull"}]},
        {"access": [{"type": "repository", "name": "a", "actions": [], "x": 1}]},
        {"access": [{"type": "registry", "name": "everything", "actions": ["*"]}]},
        {"access": [{"type": "repository", "name": "a", "actions": ["pull"]}] * 300},
    ],
)
def test_malformed_claims(
    verifier: TokenVerifier, key: ec.EllipticCurvePrivateKey, overrides: dict[str, Any]
) -> None:
    _reason(verifier, _sign(key, _claims(**overrides)))


def test_duplicate_claim_keys_are_refused(
    verifier: TokenVerifier, key: ec.EllipticCurvePrivateKey
) -> None:
    body = json.dumps(_claims())[:-1] + ',"aud":"elsewhere"}'
    assert "duplicate" in _reason(verifier, _sign_raw(key, body.encode()))


def test_non_finite_numbers_are_refused(
    verifier: TokenVerifier, key: ec.EllipticCurvePrivateKey
) -> None:
    body = json.dumps(_claims()).replace(f'"exp": {NOW + 300}', '"exp": Infinity')
    assert "Infinity" in body
    assert "malformed claims" in _reason(verifier, _sign_raw(key, body.encode()))


def test_non_object_payload(verifier: TokenVerifier, key: ec.EllipticCurvePrivateKey) -> None:
    assert "object" in _reason(verifier, _sign_raw(key, b"[1,2]"))
    assert "malformed" in _reason(verifier, _sign_raw(key, b"\xff\xfe"))


def test_tampered_payload(issuer: TokenIssuer, verifier: TokenVerifier) -> None:
    token = issuer.issue("bob", [Scope.parse("repository:a:pull")], NOW).token
    header, _payload, signature = token.split(".")
    forged = _claims(sub="bob", access=[{"type": "repository", "name": "a", "actions": ["push"]}])
    assert _reason(verifier, f"{header}.{_b64_json(forged)}.{signature}") == "bad signature"
    assert _reason(verifier, f"{header}.{_payload}.{signature[:-2]}") == "bad signature"
    assert _reason(verifier, f"{header}.{_payload}.") == "bad signature"


@pytest.mark.parametrize(
    "token",
    [
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        "...",
        "é.é.é",
        "eyJhbGciOiJFUzI1NiJ9.e30.!!!",
        "not-base64.not-base64.not-base64",
        "e30.e30.e30",
        "x" * 20_000,
    ],
)
def test_malformed_tokens(verifier: TokenVerifier, token: str) -> None:
    _reason(verifier, token)


def test_non_string_token(verifier: TokenVerifier) -> None:
    with pytest.raises(TokenInvalid):
        verifier.verify(b"a.b.c", NOW)  # type: ignore[arg-type]


def test_key_rotation_accepts_any_trusted_key(
    key: ec.EllipticCurvePrivateKey, other_key: ec.EllipticCurvePrivateKey
) -> None:
    both = TokenVerifier([key.public_key(), other_key.public_key()], ISSUER, AUDIENCE)
    for signer in (key, other_key):
        token = TokenIssuer(signer, ISSUER, AUDIENCE).issue("a", [], NOW).token
        assert both.verify(token, NOW).subject == "a"


def test_distribution_spec_token_layout_interoperates() -> None:
    # Header and claims exactly as in the Distribution spec, signed with the spec's key.
    spec_key = ec.derive_private_key(
        _int("R7OnbfMaD5J2jl7GeE8ESo7CnHSBm_1N2k9IXYFrKJA"), ec.SECP256R1()
    )
    header = (
        '{"typ":"JWT","alg":"ES256",'
        '"kid":"PYYO:TEWU:V7JH:26JV:AQTZ:LJC3:SXVJ:XGHA:34F2:2LAQ:ZRMK:Z7Q6"}'
    )
    claims = (
        '{"iss":"auth.docker.com","sub":"jlhawn","aud":"registry.docker.com",'
        '"exp":1415387315,"nbf":1415387015,"iat":1415387015,'
        '"jti":"tYJCO1c6cnyy7kAn0c7rKPgbV1H1bFws",'
        '"access":[{"type":"repository","name":"samalba/my-app","actions":["push"]}]}'
    )
    signing_input = f"{_b64(header.encode())}.{_b64(claims.encode())}"
    sig = jwt.get_algorithm_by_name("ES256").sign(signing_input.encode(), spec_key)
    spec_verifier = TokenVerifier([spec_key.public_key()], "auth.docker.com", "registry.docker.com")
    result = spec_verifier.verify(f"{signing_input}.{_b64(sig)}", 1415387100)
    assert result.subject == "jlhawn"
    assert result.allows("repository", "samalba/my-app", "push")
    assert not result.allows("repository", "samalba/my-app", "pull")
    # The spec page prints a signature that does not verify under its own key:
    # it must be refused like any other forgery.
    published = (
        signing_input
        + ".QhflHPfbd6eVF4lM9bwYpFZIV0PfikbyXuLx959ykRTBpe3CYnzs6YBK8FToVb5R47920PVLrh8zuLzdCr9t3w"
    )
    assert _reason(spec_verifier, published, 1415387100) == "bad signature"


def test_a_verified_token_is_remembered_but_its_times_are_checked_on_every_use(
        issuer: TokenIssuer, verifier: TokenVerifier, monkeypatch: pytest.MonkeyPatch) -> None:
    token = issuer.issue("alice", parse_scopes(["repository:f25/x:pull"]), NOW).token
    first = verifier.verify(token, NOW)
    calls: list[str] = []
    real = verifier._jws.decode_complete

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append("decode")
        return real(*args, **kwargs)

    monkeypatch.setattr(verifier._jws, "decode_complete", counting)
    assert verifier.verify(token, NOW + 100) == first
    assert calls == []  # served from what was verified
    with pytest.raises(TokenInvalid, match="expired"):
        verifier.verify(token, NOW + 300 + DEFAULT_LEEWAY_SECONDS)
    head, payload, signature = token.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    with pytest.raises(TokenInvalid):
        verifier.verify(f"{head}.{payload}.{flipped}", NOW)  # other bytes: verified afresh
    assert calls == ["decode"]


# ---------------------------------------------------------------------------
# The cache of verified tokens (issue #18: bounded memory per worker)


def _seen(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def test_verified_tokens_cache_is_bounded_and_keeps_the_ones_in_use(
        issuer: TokenIssuer, verifier: TokenVerifier) -> None:
    access = parse_scopes(["repository:f25/cockpit:pull"])
    busy = issuer.issue("alice", access, NOW).token
    verifier.verify(busy, NOW)
    others = [issuer.issue("bob", access, NOW).token for _ in range(_VERIFIED_CACHE + 50)]
    for n, token in enumerate(others):
        verifier.verify(token, NOW)
        if n % 100 == 0:
            verifier.verify(busy, NOW)  # a client presenting its token all along
    cached = verifier._verified
    assert len(cached) == _VERIFIED_CACHE
    assert _seen(busy) in cached
    assert _seen(others[0]) not in cached and _seen(others[-1]) in cached
    # kept under their SHA-256 (32 bytes), not as the ~700-byte tokens
    assert all(isinstance(k, bytes) and len(k) == 32 for k in cached)
    # An evicted token still verifies (its signature checked again).
    assert verifier.verify(others[0], NOW).subject == "bob"


def test_an_expired_token_leaves_the_cache(issuer: TokenIssuer, verifier: TokenVerifier) -> None:
    token = issuer.issue("alice", parse_scopes(["repository:f25/cockpit:pull"]), NOW).token
    verifier.verify(token, NOW)
    assert _seen(token) in verifier._verified
    with pytest.raises(TokenInvalid, match="expired"):
        verifier.verify(token, NOW + 300 + verifier.leeway)
    assert _seen(token) not in verifier._verified
