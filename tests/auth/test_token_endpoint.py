"""``/auth/token``: GET anonymous and Basic, the OAuth2 POST form, refusals, rate limiting."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

import pytest
from argon2 import PasswordHasher

from strata.auth.passwords import PasswordHashing
from strata.auth.scope import Scope
from strata.auth.service import LoginLimits
from strata.auth.tokens import Claims

from .conftest import IMAGE, OTHER_IMAGE, AuthEnv, EnvFactory, password_of
from .helpers import assert_refused, basic, bearer


def claims_of(env: AuthEnv, token: str) -> Claims:
    return env.auth.verifier.verify(token, env.auth.now())


def access(claims: Claims) -> set[str]:
    return {str(s) for s in claims.access}


async def get_token(env: AuthEnv, *scopes: str, headers: dict[str, str] | None = None,
                    **params: str) -> Any:
    query = [("service", "strata"), *(("scope", s) for s in scopes), *params.items()]
    return await env.client.get("/auth/token", params=query, headers=headers or {})


async def test_anonymous_get_grants_public_pull_and_catalog_only(env: AuthEnv) -> None:
    resp = await get_token(env, f"repository:{IMAGE}:pull,push,delete", "registry:catalog:*")
    assert resp.status == 200
    assert resp.headers["Cache-Control"] == "no-store"
    body = await resp.json()
    assert body["token"] == body["access_token"]
    assert body["expires_in"] == 300
    assert body["issued_at"].endswith("Z")
    claims = claims_of(env, body["token"])
    assert claims.subject == "" and claims.audience == ("strata",)
    assert claims.expires_at - claims.issued_at == 300
    assert access(claims) == {f"repository:{IMAGE}:pull", "registry:catalog:*"}


async def test_anonymous_get_without_scope_is_an_empty_token(env: AuthEnv) -> None:
    resp = await env.client.get("/auth/token")
    assert resp.status == 200
    assert claims_of(env, (await resp.json())["token"]).access == ()


@pytest.mark.parametrize(("account", "expected"), [
    ("admin", "pull,push,delete"), ("releng", "pull,push,delete"), ("maint", "pull,push"),
    ("other", "pull"), ("reviewer", "pull"), ("robot", "pull,push,delete"),
    ("robot-m", "pull,push"),
])
async def test_basic_get_grants_what_the_role_allows(env: AuthEnv, account: str,
                                                     expected: str) -> None:
    resp = await get_token(env, f"repository:{IMAGE}:pull,push,delete",
                           headers=env.creds(account), account=account)
    assert resp.status == 200, await resp.text()
    claims = claims_of(env, (await resp.json())["token"])
    assert claims.subject == account
    assert access(claims) == {f"repository:{IMAGE}:{expected}"}


async def test_wildcard_repository_scope_expands_to_concrete_actions(env: AuthEnv) -> None:
    resp = await get_token(env, f"repository:{IMAGE}:*", headers=env.creds("maint"))
    assert access(claims_of(env, (await resp.json())["token"])) == {
        f"repository:{IMAGE}:pull,push"}


async def test_several_scopes_in_one_parameter_and_repeated(env: AuthEnv) -> None:
    resp = await get_token(env, f"repository:{IMAGE}:push repository:{OTHER_IMAGE}:pull",
                           f"repository:{IMAGE}:pull", headers=env.creds("maint"))
    assert access(claims_of(env, (await resp.json())["token"])) == {
        f"repository:{IMAGE}:pull,push", f"repository:{OTHER_IMAGE}:pull"}


async def test_post_password_grant(env: AuthEnv) -> None:
    resp = await env.client.post("/auth/token", data={
        "grant_type": "password", "username": "maint", "password": password_of("maint"),
        "service": "strata", "client_id": "podman",
        "scope": f"repository:{IMAGE}:pull,push repository:{OTHER_IMAGE}:push"})
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 300
    assert body["scope"] == f"repository:{IMAGE}:pull,push"
    assert "refresh_token" not in body
    assert claims_of(env, body["access_token"]).subject == "maint"


@pytest.mark.parametrize("form", [
    {"grant_type": "refresh_token", "refresh_token": "x", "service": "strata"},
    {"grant_type": "authorization_code", "code": "x"},
    {"username": "maint", "password": "x"},
    {"grant_type": "password", "username": "maint"},
    {"grant_type": "password", "password": "x"},
])
async def test_post_refuses_other_grants_and_missing_fields(env: AuthEnv,
                                                            form: dict[str, str]) -> None:
    resp = await env.client.post("/auth/token", data=form)
    await assert_refused(resp, 400, "INVALID")


async def test_post_bad_password_is_unauthorized(env: AuthEnv) -> None:
    resp = await env.client.post("/auth/token", data={
        "grant_type": "password", "username": "maint", "password": "wrong-password"})
    await assert_refused(resp, 401, "UNAUTHORIZED")


class CountingHasher(PasswordHasher):
    calls = 0

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        type(self).calls += 1
        return super().verify(hash, password)


async def test_bad_password_and_unknown_user_take_the_same_path(make_env: EnvFactory) -> None:
    hasher = CountingHasher(time_cost=1, memory_cost=8, parallelism=1)
    env = await make_env(hashing=PasswordHashing(hasher))
    bodies = []
    for user, password in [("maint", "wrong-password"), ("nobody", "wrong-password"),
                           ("robot", "not-the-robot-token"), ("Bad Name!", "x")]:
        before = CountingHasher.calls
        resp = await get_token(env, headers=basic(user, password))
        await assert_refused(resp, 401, "UNAUTHORIZED")
        assert CountingHasher.calls - before == 1, user  # one argon2 verification, every time
        bodies.append((await resp.read(), resp.headers["WWW-Authenticate"]))
    assert len(set(bodies)) == 1


async def test_robot_token_logins(env: AuthEnv) -> None:
    secret = env.secrets["robot-m"]
    resp = await get_token(env, f"repository:{IMAGE}:push", headers=basic("robot-m", secret))
    assert access(claims_of(env, (await resp.json())["token"])) == {f"repository:{IMAGE}:push"}
    # The token belongs to its robot: another name, or a user name, does not work with it.
    for user in ("robot", "maint"):
        resp = await get_token(env, headers=basic(user, secret))
        await assert_refused(resp, 401, "UNAUTHORIZED")
    env.service.revoke_robot("robot-m")
    resp = await get_token(env, headers=basic("robot-m", secret))
    await assert_refused(resp, 401, "UNAUTHORIZED")


@pytest.mark.parametrize("scope", [
    "repository:f25/cockpit:evil:pull",          # extra colon: name "f25/cockpit:evil"
    "repository:127.0.0.1:5000/f25/cockpit:pull",
    "repository:F25/Cockpit:pull",               # upper case
    "repository:f25/../cockpit:pull",
    "repository:f25/%2e%2e/cockpit:pull",
    "repository:" + "a" * 256 + ":pull",        # over-long
    "repository:f25//cockpit:pull",
    "repository(plugin):f25/cockpit:pull",
    "registry:something:*",
    "repository:f25/cockpit",
    "repository:f25/cockpit:pull,,push",
    "nonsense",
])
async def test_malformed_scopes_are_refused(env: AuthEnv, scope: str) -> None:
    resp = await get_token(env, scope, headers=env.creds("admin"))
    await assert_refused(resp, 400, "INVALID")


async def test_unknown_actions_are_dropped_not_granted(env: AuthEnv) -> None:
    resp = await get_token(env, f"repository:{IMAGE}:pull,metadata_read",
                           headers=env.creds("admin"))
    assert access(claims_of(env, (await resp.json())["token"])) == {f"repository:{IMAGE}:pull"}


async def test_foreign_service_and_mismatched_account(env: AuthEnv) -> None:
    resp = await env.client.get("/auth/token", params={"service": "registry.example"})
    await assert_refused(resp, 400, "INVALID")
    resp = await get_token(env, headers=env.creds("maint"), account="admin")
    await assert_refused(resp, 400, "INVALID")


@pytest.mark.parametrize("header", [
    "Basic !!!notbase64", "Basic " + "bm9jb2xvbg==", "Bearer abc", "Digest x",
])
async def test_malformed_credentials_at_the_token_endpoint(env: AuthEnv, header: str) -> None:
    resp = await env.client.get("/auth/token", headers={"Authorization": header})
    await assert_refused(resp, 401, "UNAUTHORIZED")


async def test_brute_force_is_rate_limited_per_ip_and_user(make_env: EnvFactory) -> None:
    env = await make_env(limits=LoginLimits(per_user_burst=3, per_user_per_minute=6,
                                            per_ip_burst=50, per_ip_per_minute=60))
    for _ in range(3):
        resp = await get_token(env, headers=basic("maint", "guess-password"))
        await assert_refused(resp, 401, "UNAUTHORIZED")
    resp = await get_token(env, headers=basic("maint", "guess-password"))
    await assert_refused(resp, 429, "TOOMANYREQUESTS")
    assert int(resp.headers["Retry-After"]) == 10
    # Throttled means throttled: even the right password waits (no oracle).
    resp = await get_token(env, headers=env.creds("maint"))
    await assert_refused(resp, 429, "TOOMANYREQUESTS")
    resp = await env.client.post("/auth/token", data={
        "grant_type": "password", "username": "maint", "password": password_of("maint")})
    await assert_refused(resp, 429, "TOOMANYREQUESTS")
    # Basic on /v2/ shares the budget.
    resp = await env.client.put(f"/v2/{IMAGE}/manifests/x", headers=env.creds("maint"))
    await assert_refused(resp, 429, "TOOMANYREQUESTS")
    # Another user from the same client, and anonymous tokens, are not affected.
    resp = await get_token(env, headers=env.creds("releng"))
    assert resp.status == 200
    resp = await get_token(env, f"repository:{IMAGE}:pull")
    assert resp.status == 200
    # The bucket refills.
    env.clock.advance(10)
    resp = await get_token(env, headers=env.creds("maint"))
    assert resp.status == 200


async def test_password_spraying_is_rate_limited_per_ip(make_env: EnvFactory) -> None:
    env = await make_env(limits=LoginLimits(per_user_burst=5, per_user_per_minute=5,
                                            per_ip_burst=4, per_ip_per_minute=4))
    for i in range(4):
        resp = await get_token(env, headers=basic(f"user{i}", "guess-password"))
        await assert_refused(resp, 401, "UNAUTHORIZED")
    resp = await get_token(env, headers=basic("admin", "guess-password"))
    await assert_refused(resp, 429, "TOOMANYREQUESTS")


async def test_successful_logins_do_not_spend_the_budget(make_env: EnvFactory) -> None:
    env = await make_env(limits=LoginLimits(per_user_burst=1, per_user_per_minute=1,
                                            per_ip_burst=1, per_ip_per_minute=1), cache_ttl=0)
    for _ in range(5):
        resp = await get_token(env, headers=env.creds("maint"))
        assert resp.status == 200


async def test_successful_logins_are_cached_briefly(make_env: EnvFactory) -> None:
    hasher = CountingHasher(time_cost=1, memory_cost=8, parallelism=1)
    env = await make_env(hashing=PasswordHashing(hasher), cache_ttl=30)
    before = CountingHasher.calls
    for _ in range(3):
        resp = await env.client.get(f"/v2/{IMAGE}/tags/list", headers=env.creds("maint"))
        assert resp.status == 404  # authorised; the repository is empty
    assert CountingHasher.calls - before == 1
    env.clock.advance(31)
    resp = await get_token(env, headers=env.creds("maint"))
    assert resp.status == 200
    assert CountingHasher.calls - before == 2


async def test_a_burst_of_new_logins_verifies_the_password_once(make_env: EnvFactory) -> None:
    # A client pool starting up sends its first requests at once, all with credentials the
    # server has not seen: one argon2 verification serves them all (they queued behind it,
    # each verifying in turn made the last wait for all of them).
    hasher = CountingHasher(time_cost=1, memory_cost=8, parallelism=1)
    env = await make_env(hashing=PasswordHashing(hasher), cache_ttl=30)
    before = CountingHasher.calls
    answers = await asyncio.gather(*(
        env.client.get(f"/v2/{IMAGE}/tags/list", headers=env.creds("maint")) for _ in range(8)))
    assert [r.status for r in answers] == [404] * 8  # authorised; the repository is empty
    assert CountingHasher.calls - before == 1


async def test_token_works_on_v2_until_it_expires(env: AuthEnv) -> None:
    token = await env.token("maint", f"repository:{IMAGE}:pull,push")
    resp = await env.client.post(f"/v2/{IMAGE}/blobs/uploads/", headers=bearer(token))
    assert resp.status == 202
    resp = await env.client.get("/v2/", headers=bearer(token))
    assert resp.status == 200
    assert await resp.json() == {}


async def test_issued_scope_objects_round_trip(env: AuthEnv) -> None:
    token = await env.token("admin", "registry:catalog:*", f"repository:{IMAGE}:delete")
    claims = claims_of(env, token)
    assert set(claims.access) == {Scope("registry", "catalog", frozenset({"*"})),
                                  Scope("repository", IMAGE, frozenset({"delete"}))}


async def test_health_needs_no_credentials(env: AuthEnv) -> None:
    resp = await env.client.get("/healthz")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok"}
