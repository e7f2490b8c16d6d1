"""Search keeps private namespaces private (issue 15): with only ``pub`` public, anonymous
askers (``/api/v1/search`` without credentials, ``/v1/search`` as podman asks it) never see
``hid/*``; an account sees what it may pull (releng: everything); pages skip hidden rows
and still fill up."""

from __future__ import annotations

from typing import Any

from strata.auth.policy import public_namespaces

from .conftest import AuthEnv, EnvFactory


async def _json(env: AuthEnv, path: str, params: dict[str, str],
                headers: dict[str, str] | None = None) -> Any:
    resp = await env.client.get(path, params=params, headers=headers or {})
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_search_answers_only_what_the_asker_may_pull(make_env: EnvFactory) -> None:
    env = await make_env(public=public_namespaces(["pub"]), release=True)
    admin = env.creds("admin")
    for ns in ("pub", "hid"):
        resp = await env.client.post("/api/v1/namespaces", headers=admin, json={
            "name": ns, "dist_tag": f"{ns}docker", "anchor": "2025-06-10"})
        assert resp.status == 201, await resp.text()
    # hidden rows first in name order, so a page must skip them to fill up
    for repo in ("hid/a1", "hid/a2", "hid/a3", "pub/b1", "pub/b2"):
        resp = await env.client.post("/api/v1/images", headers=admin, json={
            "repository": repo, "summary": "shared toolbox"})
        assert resp.status == 201, await resp.text()

    def names(body: Any) -> list[str]:
        return [hit.get("repository", hit.get("name")) for hit in body["results"]]

    body = await _json(env, "/api/v1/search", {"q": "toolbox", "n": "1"})
    assert names(body) == ["pub/b1"] and body["next"]
    body = await _json(env, "/api/v1/search", {"q": "toolbox", "n": "1",
                                               "last": body["next"]})
    assert names(body) == ["pub/b2"] and body["next"] is None
    assert names(await _json(env, "/api/v1/search", {})) == ["pub/b1", "pub/b2"]
    assert names(await _json(env, "/v1/search", {"q": "toolbox"})) == ["pub/b1", "pub/b2"]
    # an account that may pull everything sees everything; podman's v1 search is anonymous
    assert names(await _json(env, "/api/v1/search", {"q": "toolbox"},
                             env.creds("releng"))) == [
        "hid/a1", "hid/a2", "hid/a3", "pub/b1", "pub/b2"]
    assert names(await _json(env, "/v1/search", {"q": "toolbox"}, env.creds("releng"))) == [
        "pub/b1", "pub/b2"]
    assert names(await _json(env, "/api/v1/search/packages", {"name": "openssl"})) == []
