"""The JSON API's ``authorize`` seam with authentication on: reads are open, writes need the
role, and the recorded actor is the verified account."""

from __future__ import annotations

import pytest

from .conftest import IMAGE, AuthEnv, EnvFactory
from .helpers import assert_refused, basic, bearer

NAMESPACE = {"name": "f25", "dist_tag": "f25docker"}


@pytest.fixture
async def api_env(make_env: EnvFactory) -> AuthEnv:
    return await make_env(release=True)


async def test_reads_are_open(api_env: AuthEnv) -> None:
    resp = await api_env.client.get("/api/v1/namespaces")
    assert resp.status == 200


@pytest.mark.parametrize(("account", "mode", "status"), [
    (None, "none", 401), ("maint", "basic", 403), ("reviewer", "basic", 403),
    ("robot-m", "basic", 403), ("releng", "basic", 201), ("admin", "basic", 201),
    ("robot", "basic", 201), ("releng", "bearer", 403), ("maint", "bearer", 403),
])
async def test_releng_writes(api_env: AuthEnv, account: str | None, mode: str,
                             status: int) -> None:
    # A bearer token without the API's scope does not write (test_api_scope.py).
    headers = await api_env.auth_headers(account, mode)
    resp = await api_env.client.post("/api/v1/namespaces", json=NAMESPACE, headers=headers)
    if status == 201:
        assert resp.status == 201, await resp.text()
    else:
        await assert_refused(resp, status, "UNAUTHORIZED" if status == 401 else "DENIED")


async def test_bad_credentials_on_the_api(api_env: AuthEnv) -> None:
    for headers in (basic("releng", "wrong-password"), bearer("not.a.token"),
                    {"Authorization": "Digest x"}):
        resp = await api_env.client.get("/api/v1/namespaces", headers=headers)
        await assert_refused(resp, 401, "UNAUTHORIZED")


async def test_admin_only_and_maintainer_writes(api_env: AuthEnv) -> None:
    resp = await api_env.client.post("/api/v1/webhooks", json={}, headers=api_env.creds("releng"))
    await assert_refused(resp, 403, "DENIED")
    resp = await api_env.client.post("/api/v1/webhooks", json={}, headers=api_env.creds("admin"))
    assert resp.status not in (401, 403), await resp.text()
    ref = {"reference": f"{IMAGE}@sha256:{'0' * 64}"}
    resp = await api_env.client.post("/api/v1/candidates", json=ref,
                                     headers=api_env.creds("other"))
    await assert_refused(resp, 403, "DENIED")
    resp = await api_env.client.post("/api/v1/candidates", json=ref,
                                     headers=api_env.creds("maint"))
    assert resp.status not in (401, 403), await resp.text()
