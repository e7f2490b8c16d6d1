"""The pages in a real ``strata serve`` (authentication on, two workers): wired into the served
app, pull commands from the listen address, the JSON and registry routes untouched."""

from __future__ import annotations

import json

import pytest

from support.server import StrataServer

pytestmark = pytest.mark.server


def test_strata_serve_serves_the_catalog_pages(strata_server_factory) -> None:  # type: ignore[no-untyped-def]
    server: StrataServer = strata_server_factory("--workers", "2")
    admin = {**server.admin_headers, "Content-Type": "application/json"}

    def post(path: str, body: dict[str, object]) -> None:
        resp = server.request("POST", path, headers=admin, body=json.dumps(body).encode())
        assert resp.status == 201, resp.body[:300]

    post("/api/v1/namespaces", {"name": "f25", "dist_tag": "f25docker"})
    post("/api/v1/images", {"repository": "f25/tool", "summary": "A <b>tool</b>",
                            "reason": "test"})
    for _ in range(4):  # every worker answers the same
        home = server.request("GET", "/")
        assert home.status == 200 and (home.header("content-type") or "").startswith("text/html")
        assert b'href="/f25"' in home.body
    page = server.request("GET", "/f25/tool")
    assert page.status == 200 and b"A &lt;b&gt;tool&lt;/b&gt;" in page.body
    assert b"Nothing has been released yet" in page.body
    assert server.request("GET", "/-/static/site.css").status == 200
    data = json.loads(server.request("GET", "/api/v1/browse/images/f25/tool").body)
    assert data["repository"] == "f25/tool" and data["host"] == server.host_port
    missing = server.request("GET", "/f25/nope")
    assert missing.status == 404 and b"Not found" in missing.body
    assert server.request("GET", "/v2/").status == 401  # the registry's auth probe, as before
    api = server.request("GET", "/api/nothing")
    assert api.status == 404 and json.loads(api.body)["errors"][0]["code"] == "NOT_FOUND"
