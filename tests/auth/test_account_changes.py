"""Account changes act at once: tokens carry the account's uid and credential generation, and
every use (on /v2/ and /api/) compares them with the account's row; cached Basic logins too.
Revoke, disable, enable, a password change and a role change each end everything issued
before them, with no time window (the clock never moves in these tests)."""

from __future__ import annotations

import pytest
from aiohttp import ClientResponse

from strata.auth.policy import Role
from strata.meta.account_store import SqlAccountStore
from strata.meta.connection import create_engine, sqlite_url
from strata.meta.database import Database

from .conftest import IMAGE, AuthEnv, EnvFactory
from .helpers import assert_refused, basic, bearer

PUSH = f"repository:{IMAGE}:pull,push"
API_WRITE = "strata:api:write"
NAMESPACE = {"name": "f25", "dist_tag": "f25docker"}


async def start_upload(env: AuthEnv, headers: dict[str, str]) -> int:
    resp = await env.client.post(f"/v2/{IMAGE}/blobs/uploads/", headers=headers)
    await resp.read()
    return resp.status


async def add_namespace(env: AuthEnv, headers: dict[str, str], name: str = "f25"
                        ) -> ClientResponse:
    return await env.client.post("/api/v1/namespaces", json={**NAMESPACE, "name": name},
                                 headers=headers)


async def assert_invalid_token(resp: ClientResponse) -> None:
    await assert_refused(resp, 401, "UNAUTHORIZED")
    assert 'error="invalid_token"' in resp.headers["WWW-Authenticate"]


@pytest.fixture
async def api_env(make_env: EnvFactory) -> AuthEnv:
    return await make_env(release=True)


async def test_a_disabled_account_s_token_stops_working_at_once(env: AuthEnv) -> None:
    token = bearer(await env.token("maint", PUSH))
    assert await start_upload(env, token) == 202
    env.service.store.set_user_active("maint", False)
    await assert_invalid_token(await env.client.post(f"/v2/{IMAGE}/blobs/uploads/",
                                                     headers=token))
    # Even what anybody may do: the token names an account that is no longer there.
    resp = await env.client.get(f"/v2/{IMAGE}/tags/list", headers=token)
    await assert_refused(resp, 401, "UNAUTHORIZED")
    # Enabling the account again is a new generation: the old token stays dead.
    env.service.store.set_user_active("maint", True)
    assert await start_upload(env, token) == 401
    assert await start_upload(env, bearer(await env.token("maint", PUSH))) == 202


async def test_a_role_change_ends_the_token_at_once(env: AuthEnv) -> None:
    token = bearer(await env.token("maint", PUSH))
    assert await start_upload(env, token) == 202
    env.service.set_roles("maint", Role.MAINTAINER, ["f25/elsewhere"])
    await assert_invalid_token(await env.client.post(f"/v2/{IMAGE}/blobs/uploads/",
                                                     headers=token))
    fresh = bearer(await env.token("maint", PUSH))  # the new roles: no push on IMAGE
    resp = await env.client.post(f"/v2/{IMAGE}/blobs/uploads/", headers=fresh)
    await assert_refused(resp, 403, "DENIED")
    resp = await env.client.get(f"/v2/{IMAGE}/tags/list", headers=fresh)
    assert resp.status == 404  # a public pull still works; the repository is empty


async def test_a_password_change_ends_tokens_and_cached_logins_at_once(env: AuthEnv) -> None:
    old = env.creds("maint")
    token = bearer(await env.token("maint", PUSH))
    assert await start_upload(env, old) == 202  # verified, and now cached
    assert await start_upload(env, token) == 202
    env.service.set_password("maint", "a-brand-new-password")
    assert await start_upload(env, old) == 401
    assert await start_upload(env, token) == 401
    assert await start_upload(env, basic("maint", "a-brand-new-password")) == 202


async def test_a_cached_login_ends_with_a_disabled_account_at_once(env: AuthEnv) -> None:
    creds = env.creds("maint")
    assert await start_upload(env, creds) == 202  # verified, and now cached
    env.service.store.set_user_active("maint", False)
    assert await start_upload(env, creds) == 401


async def test_a_revoked_robot_s_token_stays_dead_when_the_name_comes_back(
        api_env: AuthEnv) -> None:
    # The robot "robot-m" maintains IMAGE; its token is revoked with it. A new robot of the
    # same name, with more rights (releng), is another account: the old token must not
    # come back to life with the new robot's roles, on /v2/ nor on the JSON API.
    token = bearer(await api_env.token("robot-m", PUSH, API_WRITE))
    assert await start_upload(api_env, token) == 202
    api_env.service.revoke_robot("robot-m")
    assert await start_upload(api_env, token) == 401
    api_env.service.add_robot("robot-m", Role.RELENG)
    await assert_invalid_token(await api_env.client.post(f"/v2/{IMAGE}/blobs/uploads/",
                                                         headers=token))
    resp = await add_namespace(api_env, token)
    await assert_refused(resp, 401, "UNAUTHORIZED")
    resp = await api_env.client.get("/auth/token", params={"scope": PUSH},
                                    headers=api_env.creds("robot-m"))
    await assert_refused(resp, 401, "UNAUTHORIZED")  # its old secret does not log in either


async def test_the_json_api_ends_tokens_and_logins_at_once(api_env: AuthEnv) -> None:
    token = bearer(await api_env.token("releng", API_WRITE))
    creds = api_env.creds("releng")
    assert (await add_namespace(api_env, token, "a1")).status == 201
    assert (await add_namespace(api_env, creds, "a2")).status == 201  # cached now
    api_env.service.store.set_user_active("releng", False)
    await assert_refused(await add_namespace(api_env, token, "a3"), 401, "UNAUTHORIZED")
    await assert_refused(await add_namespace(api_env, creds, "a4"), 401, "UNAUTHORIZED")
    api_env.service.store.set_user_active("releng", True)
    await assert_refused(await add_namespace(api_env, token, "a5"), 401, "UNAUTHORIZED")
    assert (await add_namespace(api_env, creds, "a6")).status == 201
    # A role change: the token issued before it is over, the new roles count for Basic.
    token = bearer(await api_env.token("releng", API_WRITE))
    api_env.service.set_roles("releng", Role.REVIEWER)
    await assert_refused(await add_namespace(api_env, token, "a7"), 401, "UNAUTHORIZED")
    await assert_refused(await add_namespace(api_env, creds, "a8"), 403, "DENIED")


async def test_a_change_made_through_another_connection_counts_at_once(env: AuthEnv) -> None:
    # `strata user disable` run against the data dir: another engine (another process in
    # production; tests/server covers the real processes) writes the row.
    token = bearer(await env.token("maint", PUSH))
    creds = env.creds("maint")
    assert await start_upload(env, token) == 202
    assert await start_upload(env, creds) == 202
    other = create_engine(sqlite_url(env.data_dir))
    try:
        SqlAccountStore(Database(other)).set_user_active("maint", False)
    finally:
        other.dispose()
    assert await start_upload(env, token) == 401
    assert await start_upload(env, creds) == 401


async def test_a_token_without_uid_and_generation_is_refused(env: AuthEnv) -> None:
    # Tokens from before the binding (or hand-made ones signed with the key) name only "sub".
    import jwt

    account = env.service.store.get("maint")
    assert account is not None
    issued = env.auth.issuer.issue("maint", [], env.auth.now(), uid=account.uid,
                                   generation=account.generation)
    payload = jwt.decode(issued.token, options={"verify_signature": False})
    for drop in ("uid", "gen"):
        forged = {k: v for k, v in payload.items() if k != drop}
        token = jwt.encode(forged, env.auth.issuer.private_key, algorithm="ES256",
                           headers={"kid": env.auth.issuer.key_id, "typ": "JWT"})
        resp = await env.client.get(f"/v2/{IMAGE}/tags/list", headers=bearer(token))
        await assert_invalid_token(resp)
    wrong_gen = jwt.encode({**payload, "gen": account.generation + 1},
                           env.auth.issuer.private_key, algorithm="ES256",
                           headers={"kid": env.auth.issuer.key_id, "typ": "JWT"})
    await assert_invalid_token(await env.client.get(f"/v2/{IMAGE}/tags/list",
                                                    headers=bearer(wrong_gen)))


async def test_issued_tokens_name_the_account_and_its_generation(env: AuthEnv) -> None:
    import jwt

    account = env.service.store.get("maint")
    assert account is not None
    payload = jwt.decode(await env.token("maint", PUSH), options={"verify_signature": False})
    assert payload["sub"] == "maint"
    assert (payload["uid"], payload["gen"]) == (account.uid, account.generation)
    assert len(account.uid) == 32
    anonymous = jwt.decode(await env.token(None, PUSH), options={"verify_signature": False})
    assert "uid" not in anonymous and "gen" not in anonymous
    env.service.set_password("maint", "another-good-password")
    assert env.service.store.get("maint").generation == account.generation + 1  # type: ignore[union-attr]
