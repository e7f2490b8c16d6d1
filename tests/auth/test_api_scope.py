"""A bearer token acts on the JSON API only within its ``strata:api`` scope (``read`` for the
GETs that need a role, ``write`` for every change), and the account's roles still apply on
top. Basic credentials act with the roles alone (the CLI sends Basic)."""

from __future__ import annotations

from typing import Any

import jwt
import pytest

from .conftest import IMAGE, AuthEnv, EnvFactory
from .helpers import assert_refused, bearer, parse_challenge

NAMESPACE = {"name": "f25", "dist_tag": "f25docker"}
READ, WRITE, ALL = "strata:api:read", "strata:api:write", "strata:api:*"


@pytest.fixture
async def api_env(make_env: EnvFactory) -> AuthEnv:
    return await make_env(release=True)


def access_of(token: str) -> list[dict[str, Any]]:
    access: list[dict[str, Any]] = jwt.decode(
        token, options={"verify_signature": False})["access"]
    return access


async def assert_insufficient_scope(resp: Any, action: str) -> None:
    await assert_refused(resp, 403, "DENIED")
    challenge = parse_challenge(resp.headers["WWW-Authenticate"])
    assert challenge["error"] == "insufficient_scope"
    assert challenge["scope"] == f"strata:api:{action}"
    assert challenge["realm"].endswith("/auth/token")


@pytest.mark.parametrize("scopes", [(), (f"repository:{IMAGE}:pull",),
                                    (f"repository:{IMAGE}:pull,push,delete",),
                                    ("registry:catalog:*",), (READ,)])
async def test_a_token_without_api_write_changes_nothing(api_env: AuthEnv,
                                                         scopes: tuple[str, ...]) -> None:
    for account in ("releng", "admin", "robot"):
        token = bearer(await api_env.token(account, *scopes))
        resp = await api_env.client.post("/api/v1/namespaces", json=NAMESPACE, headers=token)
        await assert_insufficient_scope(resp, "write")
    resp = await api_env.client.get("/api/v1/namespaces")
    assert (await resp.json())["namespaces"] == []


@pytest.mark.parametrize("scope", [WRITE, ALL, f"{READ} {WRITE}"])
async def test_a_token_with_api_write_writes(api_env: AuthEnv, scope: str) -> None:
    token = bearer(await api_env.token("releng", *scope.split()))
    resp = await api_env.client.post("/api/v1/namespaces", json=NAMESPACE, headers=token)
    assert resp.status == 201, await resp.text()


async def test_the_roles_still_apply_on_top_of_the_scope(api_env: AuthEnv) -> None:
    # maint may get strata:api:write (it adds candidates) but not create namespaces, nor add
    # a candidate of another image.
    token = bearer(await api_env.token("maint", WRITE))
    resp = await api_env.client.post("/api/v1/namespaces", json=NAMESPACE, headers=token)
    await assert_refused(resp, 403, "DENIED")
    other = {"reference": f"f25/other@sha256:{'0' * 64}"}
    resp = await api_env.client.post("/api/v1/candidates", json=other, headers=token)
    await assert_refused(resp, 403, "DENIED")
    own = {"reference": f"{IMAGE}@sha256:{'0' * 64}"}
    resp = await api_env.client.post("/api/v1/candidates", json=own, headers=token)
    assert resp.status not in (401, 403), await resp.text()  # past the checks (unknown image)
    resp = await api_env.client.post("/api/v1/candidates", json=own,
                                     headers=bearer(await api_env.token("maint")))
    await assert_insufficient_scope(resp, "write")


async def test_reads_that_need_a_role_need_api_read(api_env: AuthEnv) -> None:
    resp = await api_env.client.get("/api/v1/webhooks",
                                    headers=bearer(await api_env.token("releng")))
    await assert_insufficient_scope(resp, "read")
    for scope in (READ, WRITE + " " + READ, ALL):
        resp = await api_env.client.get("/api/v1/webhooks",
                                        headers=bearer(await api_env.token("releng", scope)))
        assert resp.status == 200, await resp.text()
    # write alone does not read
    resp = await api_env.client.get("/api/v1/webhooks",
                                    headers=bearer(await api_env.token("releng", WRITE)))
    await assert_insufficient_scope(resp, "read")
    # public reads need no scope, as a public pull needs none
    resp = await api_env.client.get("/api/v1/namespaces",
                                    headers=bearer(await api_env.token("releng")))
    assert resp.status == 200


@pytest.mark.parametrize(("account", "granted"), [
    ("admin", ["read", "write"]), ("releng", ["read", "write"]), ("maint", ["read", "write"]),
    ("robot", ["read", "write"]), ("robot-m", ["read", "write"]), ("reviewer", ["read", "write"]),
    (None, None),
])
async def test_the_token_endpoint_grants_what_was_asked_and_allowed(
        api_env: AuthEnv, account: str | None, granted: list[str] | None) -> None:
    access = access_of(await api_env.token(account, ALL))
    expected = [] if granted is None else [{"type": "strata", "name": "api",
                                            "actions": granted}]
    assert access == expected
    # only what was asked
    access = access_of(await api_env.token(account, READ))
    expected = [] if granted is None else [{"type": "strata", "name": "api",
                                            "actions": ["read"]}]
    assert access == expected
    assert access_of(await api_env.token(account, f"repository:{IMAGE}:pull")) == [
        {"type": "repository", "name": IMAGE, "actions": ["pull"]}]


async def test_the_reviewer_writes_only_reviews_with_any_token(api_env: AuthEnv) -> None:
    """Issue 14: reviewers' tokens carry ``strata:api:write`` (they comment, approve and
    reject reviews); their role still refuses every other change."""
    token = bearer(await api_env.token("reviewer", ALL))
    resp = await api_env.client.post("/api/v1/namespaces", json=NAMESPACE, headers=token)
    await assert_refused(resp, 403, "DENIED")
    read_only = bearer(await api_env.token("reviewer", READ))
    resp = await api_env.client.post("/api/v1/reviews/1/approve", json={"comment": "ok"},
                                     headers=read_only)
    await assert_insufficient_scope(resp, "write")


@pytest.mark.parametrize("scope", ["strata:other:read", "strata:api", "strata:api:read,,write"])
async def test_malformed_api_scopes_are_refused(api_env: AuthEnv, scope: str) -> None:
    resp = await api_env.client.get("/auth/token", params={"scope": scope},
                                    headers=api_env.creds("releng"))
    await assert_refused(resp, 400, "INVALID")


async def test_unknown_api_actions_are_dropped(api_env: AuthEnv) -> None:
    assert access_of(await api_env.token("releng", "strata:api:admin,read")) == [
        {"type": "strata", "name": "api", "actions": ["read"]}]


async def test_the_oauth_post_form_grants_api_scopes(api_env: AuthEnv) -> None:
    resp = await api_env.client.post("/auth/token", data={
        "grant_type": "password", "username": "releng",
        "password": api_env.secrets["releng"], "scope": f"{WRITE} repository:{IMAGE}:pull"})
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["scope"] == f"strata:api:write repository:{IMAGE}:pull"
    resp = await api_env.client.post("/api/v1/namespaces", json=NAMESPACE,
                                     headers=bearer(body["access_token"]))
    assert resp.status == 201, await resp.text()


async def test_basic_credentials_keep_working_on_the_api(api_env: AuthEnv) -> None:
    resp = await api_env.client.post("/api/v1/namespaces", json=NAMESPACE,
                                     headers=api_env.creds("releng"))
    assert resp.status == 201, await resp.text()
    resp = await api_env.client.get("/api/v1/webhooks", headers=api_env.creds("releng"))
    assert resp.status == 200
