"""Inputs that used to answer 500 on the JSON API: a far anchor, huge integers, deep JSON, a
body read before the permission check. Each is now a 4xx with a catalogue error, and generated
requests over every JSON API route never get a 500 (anonymous, or as admin)."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from strata.errors import Code
from strata.meta.schema import namespaces

from .conftest import IMAGE, AuthEnv, EnvFactory
from .helpers import assert_refused

DEEP = b"[" * (512 * 1024)
WRITE_ROUTES = ["/api/v1/namespaces", "/api/v1/images", "/api/v1/candidates",
                "/api/v1/releases/publish", "/api/v1/releases/oob", "/api/v1/rollback",
                "/api/v1/webhooks", f"/api/v1/images/{IMAGE}/streams/1/eol"]


@pytest.fixture
async def api_env(make_env: EnvFactory) -> AuthEnv:
    return await make_env(release=True)


async def post_raw(env: AuthEnv, path: str, body: bytes,
                   headers: dict[str, str] | None = None) -> Any:
    return await env.client.post(path, data=io.BytesIO(body), headers={
        "Content-Type": "application/json", **(headers or {})})


@pytest.mark.parametrize("path", WRITE_ROUTES)
async def test_permission_is_checked_before_the_body_is_read(api_env: AuthEnv,
                                                             path: str) -> None:
    resp = await post_raw(api_env, path, DEEP)
    await assert_refused(resp, 401, "UNAUTHORIZED")
    resp = await post_raw(api_env, path, DEEP, api_env.creds("reviewer"))
    await assert_refused(resp, 403, "DENIED")


async def test_deep_json_from_an_allowed_account_is_invalid(api_env: AuthEnv) -> None:
    for body in (DEEP, b"[" * 5000 + b"]" * 5000,
                 b'{"name": ' + b"[" * 100 + b"]" * 100 + b"}",
                 json.dumps({"references": [[[[[[[[[[[[[[[[[["x"]]]]]]]]]]]]]]]]]]}).encode()):
        for path in ("/api/v1/namespaces", "/api/v1/releases/oob"):
            resp = await post_raw(api_env, path, body, api_env.creds("admin"))
            await assert_refused(resp, 400, "INVALID")
    resp = await post_raw(api_env, "/api/v1/candidates", DEEP, api_env.creds("maint"))
    await assert_refused(resp, 400, "INVALID")


async def test_a_body_over_the_limit_is_413(api_env: AuthEnv) -> None:
    body = json.dumps({"name": "x" * (1 << 20)}).encode()
    resp = await post_raw(api_env, "/api/v1/namespaces", body, api_env.creds("releng"))
    await assert_refused(resp, 413, "SIZE_INVALID")


@pytest.mark.parametrize("value", [
    "9" * 5000, json.dumps("9" * 5000), "0", "-1", "3651", '"12x"', "1.5", "true", "1e400",
])
async def test_interval_days_is_bounded(api_env: AuthEnv, value: str) -> None:
    body = f'{{"name": "f25", "dist_tag": "f25docker", "interval_days": {value}}}'.encode()
    resp = await post_raw(api_env, "/api/v1/namespaces", body, api_env.creds("releng"))
    await assert_refused(resp, 400, "INVALID")


@pytest.mark.parametrize("anchor", ["9999-12-31", "0001-01-01", "3000-01-01", "1969-12-31",
                                    "2025-02-30", "x" * 5000])
async def test_anchors_are_bounded(api_env: AuthEnv, anchor: str) -> None:
    resp = await api_env.client.post("/api/v1/namespaces", json={
        "name": "f25", "dist_tag": "f25docker", "anchor": anchor},
        headers=api_env.creds("releng"))
    await assert_refused(resp, 400, "INVALID")
    resp = await api_env.client.post("/api/v1/namespaces", json={
        "name": "f25", "dist_tag": "f25docker", "anchor": "2999-12-31", "interval_days": 3650},
        headers=api_env.creds("releng"))
    assert resp.status == 201, await resp.text()
    resp = await api_env.client.get("/api/v1/plan", params={"count": "100"})
    assert resp.status == 200, await resp.text()


async def test_the_plan_survives_a_far_anchor_stored_before_the_bound(api_env: AuthEnv) -> None:
    resp = await api_env.client.post("/api/v1/namespaces", json={
        "name": "f25", "dist_tag": "f25docker"}, headers=api_env.creds("releng"))
    assert resp.status == 201
    with api_env.engine.begin() as conn:  # as an older server let it in
        conn.execute(sa.update(namespaces).values(anchor="9999-12-31", interval_days=3650))
    for params in ({}, {"count": "100"}, {"namespace": "f25"}):
        resp = await api_env.client.get("/api/v1/plan", params=params)
        assert resp.status == 200, await resp.text()
        [plan] = (await resp.json())["plans"]
        assert plan["next"][0]["date"] == "9999-12-31"


@pytest.mark.parametrize("count", ["9" * 5000, "-5", "0", "101", "x"])
async def test_plan_count_is_bounded(api_env: AuthEnv, count: str) -> None:
    resp = await api_env.client.get("/api/v1/plan", params={"count": count})
    await assert_refused(resp, 400, "INVALID")


@pytest.mark.parametrize("webhook", ["9" * 30, "9223372036854775808", "0", "-1", "x"])
async def test_the_deliveries_webhook_filter_is_bounded(api_env: AuthEnv, webhook: str) -> None:
    # 30 digits overflowed SQLite's integer (500); a filter that cannot apply is refused
    resp = await api_env.client.get("/api/v1/webhooks/deliveries", params={"webhook": webhook},
                                    headers=api_env.creds("admin"))
    await assert_refused(resp, 400, "INVALID")
    resp = await api_env.client.get("/api/v1/webhooks/deliveries", params={"webhook": "7"},
                                    headers=api_env.creds("admin"))
    assert resp.status == 200 and (await resp.json())["deliveries"] == []


# -- generated requests -------------------------------------------------------------------
FIELDS = ["name", "dist_tag", "interval_days", "anchor", "base_image", "repository",
          "maintainers", "source_url", "source_branch", "status", "reference", "advisories",
          "reason", "references", "to", "namespace", "url", "events", "secret"]
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2**80), 2**80),
                    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=30),
                    st.sampled_from(["9999-12-31", "2025-01-01", f"{IMAGE}@sha256:" + "0" * 64,
                                     f"{IMAGE}:latest", "f25", "f25docker", "9" * 5000]))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=8)
BODIES = st.one_of(
    st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=6).map(
        lambda d: json.dumps(d).encode()),
    VALUES.map(lambda v: json.dumps(v).encode()),
    st.sampled_from([b"", b"{", b"\xff", b"[" * 3000, b'{"a": ' * 3000, b"9" * 5000,
                     b'{"interval_days": ' + b"9" * 5000 + b"}", b"NaN", b"{}" * 3]),
)
ROUTES = st.sampled_from([("POST", p) for p in WRITE_ROUTES] + [
    ("GET", "/api/v1/plan"), ("GET", "/api/v1/candidates"), ("GET", "/api/v1/releases"),
    ("GET", "/api/v1/webhooks/deliveries"), ("GET", f"/api/v1/images/{IMAGE}/history"),
    ("GET", "/api/v1/namespaces/f25"), ("GET", "/api/v1/releases/f25-9999-12-31"),
])
QUERY = st.dictionaries(st.sampled_from(["count", "namespace", "status", "at", "tag",
                                         "webhook", "repository"]),
                        st.one_of(st.text(max_size=20), st.sampled_from(
                            ["9" * 3900, "-1", "9999-12-31", "1e308", "all"])), max_size=2)
FUZZ = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


@FUZZ
@given(route=ROUTES, body=BODIES, query=QUERY, who=st.sampled_from([None, "admin", "maint"]))
async def test_generated_api_requests_never_get_a_500(api_env: AuthEnv, route: tuple[str, str],
                                                      body: bytes, query: dict[str, str],
                                                      who: str | None) -> None:
    method, path = route
    headers = {"Content-Type": "application/json", **(api_env.creds(who) if who else {})}
    resp = await api_env.client.request(method, path, params=query,
                                        data=body if method == "POST" else None,
                                        headers=headers)
    raw = await resp.read()
    assert resp.status < 500, (method, path, query, body[:200], resp.status, raw[:300])
    if resp.status >= 400:
        errors = json.loads(raw)["errors"]
        assert errors and all(e["code"] in Code.__members__ for e in errors)
