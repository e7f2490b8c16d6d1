"""The attacks a registry meets, end to end through HTTP: forged, stolen and misused tokens,
path tricks, and probing for private repositories. Each refusal is 401 UNAUTHORIZED or
403 DENIED, and never depends on whether a repository exists."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from strata.auth.keys import libtrust_key_id
from strata.auth.policy import public_namespaces
from strata.auth.scope import Scope
from strata.auth.tokens import TokenIssuer

from .conftest import IMAGE, OTHER_IMAGE, AuthEnv, EnvFactory
from .helpers import assert_refused, bearer, digest, make_image, parse_challenge, raw_request

IMG = make_image("attack")
MANIFEST_TYPE = {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}


async def push_image(env: AuthEnv, repo: str, tag: str = "1.0") -> None:
    admin = env.creds("admin")
    for blob in IMG.blobs:
        resp = await env.client.post(f"/v2/{repo}/blobs/uploads/",
                                     params={"digest": digest(blob)}, data=blob, headers=admin)
        assert resp.status == 201, await resp.text()
    resp = await env.client.put(f"/v2/{repo}/manifests/{tag}", data=IMG.manifest,
                                headers={**admin, **MANIFEST_TYPE})
    assert resp.status == 201, await resp.text()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims_for(env: AuthEnv, access: list[dict[str, Any]], **override: Any) -> dict[str, Any]:
    now = int(time.time())
    admin = env.service.store.get("admin")
    assert admin is not None
    claims = {"iss": env.auth.issuer.issuer, "sub": "admin", "aud": "strata", "exp": now + 300,
              "nbf": now, "iat": now, "jti": "abc", "access": access, "uid": admin.uid,
              "gen": admin.generation}
    claims.update(override)
    return claims


PUSH_ALL = [{"type": "repository", "name": IMAGE, "actions": ["pull", "push", "delete"]}]


# -- tokens ---------------------------------------------------------------------------------
async def test_token_for_repository_a_used_on_b(env: AuthEnv) -> None:
    token = await env.token("maint", f"repository:{IMAGE}:pull,push")
    resp = await env.client.post(f"/v2/{OTHER_IMAGE}/blobs/uploads/", headers=bearer(token))
    await assert_refused(resp, 403, "DENIED")
    resp = await env.client.put(f"/v2/{OTHER_IMAGE}/manifests/1.0", data=IMG.manifest,
                                headers={**bearer(token), **MANIFEST_TYPE})
    await assert_refused(resp, 403, "DENIED")
    # Pulling public B needs no scope at all: the token gets exactly what anonymous gets.
    resp = await env.client.get(f"/v2/{OTHER_IMAGE}/tags/list", headers=bearer(token))
    anonymous = await env.client.get(f"/v2/{OTHER_IMAGE}/tags/list")
    assert (resp.status, await resp.read()) == (anonymous.status, await anonymous.read())


async def test_pull_token_used_to_push(env: AuthEnv) -> None:
    # Whoever holds it (may they push or not), a pull token is refused for a push, with the
    # scope to fetch (the answer does not depend on who asks).
    for account in (None, "reviewer", "other", "maint", "admin"):
        token = await env.token(account, f"repository:{IMAGE}:pull")
        resp = await env.client.post(f"/v2/{IMAGE}/blobs/uploads/", headers=bearer(token))
        await assert_refused(resp, 403, "DENIED")
        challenge = parse_challenge(resp.headers["WWW-Authenticate"])
        assert (challenge["error"], challenge["scope"]) == (
            "insufficient_scope", f"repository:{IMAGE}:pull,push")
        resp = await env.client.delete(f"/v2/{IMAGE}/manifests/{IMG.digest}",
                                       headers=bearer(token))
        await assert_refused(resp, 403, "DENIED")


async def test_a_push_token_does_not_delete(env: AuthEnv) -> None:
    await push_image(env, IMAGE)
    token = await env.token("maint", f"repository:{IMAGE}:pull,push,delete")
    resp = await env.client.delete(f"/v2/{IMAGE}/manifests/{IMG.digest}", headers=bearer(token))
    await assert_refused(resp, 403, "DENIED")


def invalid_token_answer(resp_headers: Any) -> None:
    challenge = parse_challenge(resp_headers["WWW-Authenticate"])
    assert challenge["error"] == "invalid_token"


async def _refused_as_invalid(env: AuthEnv, token: str) -> None:
    for method, path in (("POST", f"/v2/{IMAGE}/blobs/uploads/"),
                         ("GET", f"/v2/{IMAGE}/tags/list"), ("GET", "/v2/")):
        resp = await env.client.request(method, path, headers=bearer(token))
        await assert_refused(resp, 401, "UNAUTHORIZED")
        invalid_token_answer(resp.headers)


@pytest.mark.parametrize("shift", [-400, -331, +331, +3600])
async def test_expired_and_not_yet_valid_tokens(env: AuthEnv, shift: int) -> None:
    """Issued 400 s ago (expired 100 s ago), just past the 30 s leeway, or in the future."""
    issued = env.auth.issuer.issue("admin", [Scope.parse(f"repository:{IMAGE}:pull,push")],
                                   int(time.time()) + shift)
    await _refused_as_invalid(env, issued.token)


async def test_token_within_leeway_is_accepted(env: AuthEnv) -> None:
    admin = env.service.store.get("admin")
    assert admin is not None
    issued = env.auth.issuer.issue("admin", [Scope.parse(f"repository:{IMAGE}:pull,push")],
                                   int(time.time()) + 20, uid=admin.uid,
                                   generation=admin.generation)
    resp = await env.client.post(f"/v2/{IMAGE}/blobs/uploads/", headers=bearer(issued.token))
    assert resp.status == 202


async def test_alg_none(env: AuthEnv) -> None:
    header = {"alg": "none", "typ": "JWT", "kid": env.auth.issuer.key_id}
    payload = json.dumps(claims_for(env, PUSH_ALL)).encode()
    token = f"{b64(json.dumps(header).encode())}.{b64(payload)}."
    await _refused_as_invalid(env, token)


async def test_hs256_signed_with_the_public_key(env: AuthEnv,
                                                signing_key: ec.EllipticCurvePrivateKey) -> None:
    public_pem = signing_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    header = {"alg": "HS256", "typ": "JWT", "kid": env.auth.issuer.key_id}
    signing_input = (f"{b64(json.dumps(header).encode())}."
                     f"{b64(json.dumps(claims_for(env, PUSH_ALL)).encode())}")
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    await _refused_as_invalid(env, f"{signing_input}.{b64(mac)}")


async def test_token_signed_by_another_key(env: AuthEnv) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    # With its own key id (unknown here) ...
    forged = TokenIssuer(other, env.auth.issuer.issuer, "strata")
    token = forged.issue("admin", [Scope.parse(f"repository:{IMAGE}:pull,push")],
                         int(time.time())).token
    await _refused_as_invalid(env, token)
    # ... and pretending to be ours.
    token = jwt.encode(claims_for(env, PUSH_ALL), other, algorithm="ES256",
                       headers={"kid": env.auth.issuer.key_id})
    await _refused_as_invalid(env, token)
    assert libtrust_key_id(other.public_key()) != env.auth.issuer.key_id


async def test_tampered_access_claim(env: AuthEnv) -> None:
    token = await env.token("maint", f"repository:{IMAGE}:pull")
    head, payload, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["access"] = PUSH_ALL
    await _refused_as_invalid(env, f"{head}.{b64(json.dumps(claims).encode())}.{sig}")


@pytest.mark.parametrize("override", [{"aud": "registry.example"}, {"iss": "someone-else"},
                                      {"aud": ["other", "more"]}])
async def test_wrong_audience_or_issuer(env: AuthEnv, override: dict[str, Any],
                                        signing_key: ec.EllipticCurvePrivateKey) -> None:
    token = jwt.encode(claims_for(env, PUSH_ALL, **override), signing_key, algorithm="ES256",
                       headers={"kid": env.auth.issuer.key_id})
    await _refused_as_invalid(env, token)


@pytest.mark.parametrize("value", ["", "garbage", "a.b.c", "x" * 8000, "Bearer"])
async def test_garbage_bearer_tokens(env: AuthEnv, value: str) -> None:
    resp = await env.client.get(f"/v2/{IMAGE}/tags/list",
                                headers={"Authorization": f"Bearer {value}"})
    await assert_refused(resp, 401, "UNAUTHORIZED")


@pytest.mark.parametrize("header", ["Digest abc", "Basic !!!", "Negotiate x", "Token abc"])
async def test_other_schemes_and_broken_basic(env: AuthEnv, header: str) -> None:
    resp = await env.client.get(f"/v2/{IMAGE}/tags/list", headers={"Authorization": header})
    await assert_refused(resp, 401, "UNAUTHORIZED")


async def test_basic_on_v2_with_a_wrong_password(env: AuthEnv) -> None:
    resp = await env.client.get(f"/v2/{IMAGE}/tags/list",
                                headers={"Authorization": "Basic " + base64.b64encode(
                                    b"admin:wrong-password").decode()})
    await assert_refused(resp, 401, "UNAUTHORIZED")
    assert resp.headers["WWW-Authenticate"].startswith("Bearer realm=")


# -- path tricks ----------------------------------------------------------------------------
TRICKS = [
    "/v2/f25/cockpit/../other/manifests/1.0",
    "/v2/f25/cockpit/%2e%2e/other/manifests/1.0",
    "/v2/f25/cockpit/%2E%2E/other/manifests/1.0",
    "/v2/f25/cockpit/..%2fother/manifests/1.0",
    "/v2/f25/cockpit/./../other/manifests/1.0",
    "/v2/f25//other/manifests/1.0",
    "/v2/f25/other%0a/manifests/1.0",
    "/v2/f25/other%00/manifests/1.0",
    "/v2/F25/Other/manifests/1.0",
    "/v2/f25/other:evil/manifests/1.0",
    "/v2/f25/" + "o" * 256 + "/manifests/1.0",
    "/v2/f25/other;x/manifests/1.0",
]


@pytest.mark.parametrize("target", TRICKS)
async def test_path_tricks_never_reach_another_repository(env: AuthEnv, target: str) -> None:
    """A trick is an invalid name: 400 NAME_INVALID before authorization, for anonymous,
    bearer and Basic callers alike, admin included (issue 11; it was 401/403 before)."""
    await push_image(env, OTHER_IMAGE)
    token = await env.token("maint", f"repository:{IMAGE}:pull,push")
    admin = await env.token("admin", f"repository:{OTHER_IMAGE}:pull,push,delete")
    for method in ("GET", "PUT", "DELETE"):
        for headers in ({}, bearer(token), bearer(admin), env.creds("maint"),
                        env.creds("admin")):
            status, _, body = await raw_request(env.client, method, target, headers=headers)
            if "%0a" in target:  # aiohttp's router matches no /v2/ route across a newline
                assert (status, json.loads(body)["errors"][0]["code"]) == (404, "NOT_FOUND")
                continue
            assert status == 400, (target, status, body)
            assert json.loads(body)["errors"][0]["code"] == "NAME_INVALID"


async def test_aiohttp_does_not_normalise_dot_segments(env: AuthEnv) -> None:
    """The premise of the tests above: the server sees ``..`` (and decoded ``%2e%2e``) as is,
    and both the gate and the dispatcher read the same path tail, so a name with dot segments
    is simply an invalid name, never a different repository."""
    await push_image(env, OTHER_IMAGE)
    admin = await env.token("admin", f"repository:{OTHER_IMAGE}:pull")
    for target in ("/v2/f25/cockpit/../other/manifests/1.0",
                   "/v2/f25/cockpit/%2e%2e/other/manifests/1.0"):
        status, _, body = await raw_request(env.client, "GET", target, headers=bearer(admin))
        assert status == 400, body  # not 200: f25/other was never addressed
    status, _, _ = await raw_request(env.client, "GET", "/v2/f25/other/manifests/1.0",
                                     headers=bearer(admin))
    assert status == 200


async def test_encoded_slash_is_the_same_repository_for_gate_and_handler(env: AuthEnv) -> None:
    await push_image(env, OTHER_IMAGE)
    cockpit = await env.token("maint", f"repository:{IMAGE}:pull,push")
    status, headers, _ = await raw_request(env.client, "DELETE", "/v2/f25%2fother/manifests/1.0",
                                           headers=bearer(cockpit))
    assert status == 403  # the gate asks for a delete right on f25/other, not f25/cockpit
    assert 'scope="repository:f25/other:delete"' in headers["www-authenticate"]
    other = await env.token(None, f"repository:{OTHER_IMAGE}:pull")
    status, _, _ = await raw_request(env.client, "GET", "/v2/f25%2fother/manifests/1.0",
                                     headers=bearer(other))
    assert status == 200


async def test_mount_from_an_invalid_name_is_refused(env: AuthEnv) -> None:
    token = await env.token("maint", f"repository:{IMAGE}:pull,push")
    for source in ("f25/../other", "F25/other", "f25/other\n"):
        resp = await env.client.post(f"/v2/{IMAGE}/blobs/uploads/",
                                     params={"mount": IMG.layer_digest, "from": source},
                                     headers=bearer(token))
        await assert_refused(resp, 400, "NAME_INVALID")


# -- private repositories never leak --------------------------------------------------------
@pytest.fixture
async def private_env(make_env: EnvFactory) -> AuthEnv:
    """Only ``f25/*`` is public; ``secret/app`` exists, ``secret/ghost`` does not."""
    env = await make_env(public=public_namespaces(["f25"]))
    await push_image(env, "secret/app")
    return env


async def _answers(env: AuthEnv, headers: dict[str, str], repo: str) -> list[tuple[int, bytes]]:
    out = []
    for method, path in (("GET", f"/v2/{repo}/manifests/1.0"),
                         ("HEAD", f"/v2/{repo}/manifests/1.0"),
                         ("GET", f"/v2/{repo}/tags/list"),
                         ("GET", f"/v2/{repo}/blobs/{IMG.layer_digest}"),
                         ("POST", f"/v2/{repo}/blobs/uploads/"),
                         ("DELETE", f"/v2/{repo}/manifests/{IMG.digest}")):
        resp = await env.client.request(method, path, headers=headers)
        body = (await resp.read()).replace(repo.encode(), b"REPO")
        www = resp.headers.get("WWW-Authenticate", "").replace(repo, "REPO")
        out.append((resp.status, body + www.encode()))
    return out


async def test_private_repository_existence_does_not_leak(private_env: AuthEnv) -> None:
    env = private_env
    for account in (None, "maint", "other"):
        for mode in (("none",) if account is None else ("bearer", "basic")):
            scopes = [f"repository:{r}:pull,push,delete" for r in ("secret/app", "secret/ghost")]
            headers = await env.auth_headers(account, mode, *scopes)
            existing = await _answers(env, headers, "secret/app")
            missing = await _answers(env, headers, "secret/ghost")
            assert existing == missing, (account, mode)
            assert {status for status, _ in existing} == ({401} if mode == "none" else {403})


async def test_private_repository_for_those_allowed(private_env: AuthEnv) -> None:
    env = private_env
    resp = await env.client.get("/v2/secret/app/manifests/1.0",
                                headers=await env.auth_headers("reviewer", "bearer",
                                                               "repository:secret/app:pull"))
    assert resp.status == 200
    resp = await env.client.get("/v2/secret/app/manifests/1.0", headers=env.creds("admin"))
    assert resp.status == 200
    # Public namespaces stay public.
    await push_image(env, IMAGE)
    resp = await env.client.get(f"/v2/{IMAGE}/manifests/1.0")
    assert resp.status == 200


async def test_mount_from_a_private_repository(private_env: AuthEnv) -> None:
    env = private_env
    scopes = (f"repository:{IMAGE}:pull,push", "repository:secret/app:pull",
              "repository:secret/ghost:pull")
    token = await env.token("maint", *scopes)
    for source in ("secret/app", "secret/ghost"):
        resp = await env.client.post(f"/v2/{IMAGE}/blobs/uploads/",
                                     params={"mount": IMG.layer_digest, "from": source},
                                     headers=bearer(token))
        await assert_refused(resp, 403, "DENIED")


async def test_private_catalog_is_for_those_who_see_everything(private_env: AuthEnv) -> None:
    env = private_env
    resp = await env.client.get("/v2/_catalog")
    await assert_refused(resp, 401, "UNAUTHORIZED")
    for account in (None, "maint"):
        token = await env.token(account, "registry:catalog:*")
        resp = await env.client.get("/v2/_catalog", headers=bearer(token))
        await assert_refused(resp, 403, "DENIED")
    token = await env.token("reviewer", "registry:catalog:*")
    resp = await env.client.get("/v2/_catalog", headers=bearer(token))
    assert resp.status == 200
    assert "secret/app" in (await resp.json())["repositories"]
