"""Account changes reach /v2/ within seconds: tokens and cached logins are checked against the
account as it is now (read at most ACCOUNT_RECHECK_SECONDS ago), not as it was at login."""

from __future__ import annotations

from strata.auth.policy import Role
from strata.auth.service import ACCOUNT_RECHECK_SECONDS

from .conftest import IMAGE, AuthEnv
from .helpers import assert_refused, basic, bearer

PUSH = f"repository:{IMAGE}:pull,push"


async def start_upload(env: AuthEnv, headers: dict[str, str]) -> int:
    resp = await env.client.post(f"/v2/{IMAGE}/blobs/uploads/", headers=headers)
    await resp.read()
    return resp.status


async def test_a_disabled_account_s_token_stops_working(env: AuthEnv) -> None:
    token = bearer(await env.token("maint", PUSH))
    assert await start_upload(env, token) == 202
    env.service.store.set_user_active("maint", False)
    env.clock.advance(ACCOUNT_RECHECK_SECONDS + 1)
    resp = await env.client.post(f"/v2/{IMAGE}/blobs/uploads/", headers=token)
    await assert_refused(resp, 401, "UNAUTHORIZED")
    assert 'error="invalid_token"' in resp.headers["WWW-Authenticate"]
    # Even what anybody may do: the token names an account that is no longer there.
    resp = await env.client.get(f"/v2/{IMAGE}/tags/list", headers=token)
    await assert_refused(resp, 401, "UNAUTHORIZED")
    env.service.store.set_user_active("maint", True)
    env.clock.advance(ACCOUNT_RECHECK_SECONDS + 1)
    assert await start_upload(env, token) == 202


async def test_a_token_loses_what_its_account_lost(env: AuthEnv) -> None:
    token = bearer(await env.token("maint", PUSH))
    assert await start_upload(env, token) == 202
    env.service.set_roles("maint", Role.MAINTAINER, ["f25/elsewhere"])
    env.clock.advance(ACCOUNT_RECHECK_SECONDS + 1)
    resp = await env.client.post(f"/v2/{IMAGE}/blobs/uploads/", headers=token)
    await assert_refused(resp, 403, "DENIED")
    resp = await env.client.get(f"/v2/{IMAGE}/tags/list", headers=token)
    assert resp.status == 404  # a public pull still works; the repository is empty


async def test_a_cached_login_ends_with_a_disabled_account(env: AuthEnv) -> None:
    creds = env.creds("maint")
    assert await start_upload(env, creds) == 202  # verified, and now cached
    env.service.store.set_user_active("maint", False)
    env.clock.advance(ACCOUNT_RECHECK_SECONDS + 1)
    assert await start_upload(env, creds) == 401


async def test_a_cached_login_ends_with_a_new_password(env: AuthEnv) -> None:
    old = env.creds("maint")
    assert await start_upload(env, old) == 202
    env.service.set_password("maint", "a-brand-new-password")
    env.clock.advance(ACCOUNT_RECHECK_SECONDS + 1)
    assert await start_upload(env, old) == 401
    assert await start_upload(env, basic("maint", "a-brand-new-password")) == 202


async def test_within_the_recheck_window_the_cached_state_serves(env: AuthEnv) -> None:
    # The bound is a bound, not a delay on every request: requests inside the window are
    # answered from the account as read at its start (no database read per request).
    token = bearer(await env.token("maint", PUSH))
    assert await start_upload(env, token) == 202
    env.service.store.set_user_active("maint", False)
    assert await start_upload(env, token) == 202
    env.clock.advance(ACCOUNT_RECHECK_SECONDS + 1)
    assert await start_upload(env, token) == 401
