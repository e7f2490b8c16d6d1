"""``GET /api/v1/openapi.json``: the document lists every /api/v1 route of the served app (a
route added without a declaration fails here), validates as OpenAPI 3.1, and the same
declarations check what clients send (query parameters, bodies)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from aiohttp import web
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

from .conftest import ADMIN, Client


async def document(client: Client) -> dict[str, Any]:
    resp = await client.get("/api/v1/openapi.json")
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "application/json"
    doc: dict[str, Any] = await resp.json()
    return doc


def served_routes(app: web.Application) -> set[tuple[str, str]]:
    """(METHOD, OpenAPI path template) of every /api/v1 route the app answers."""
    out = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter") or ""
        if not path.startswith("/api/v1"):
            continue
        out.add((route.method, re.sub(r"\{(\w+)(?::[^}]*)?\}", r"{\1}", path)))
    return out


async def test_every_api_route_is_documented(app: web.Application, client: Client) -> None:
    doc = await document(client)
    documented = {(method.upper(), path) for path, item in doc["paths"].items()
                  for method in item}
    served = served_routes(app)
    assert len(served) > 30  # namespaces, images, reviews, releases, webhooks, builds...
    # HEAD comes with GET (aiohttp's add_get); every other route must be declared
    missing = {(m, p) for m, p in served if m != "HEAD" and (m, p) not in documented}
    assert not missing, f"routes without a declaration in the OpenAPI document: {missing}"
    heads = {p for m, p in served if m == "HEAD"}
    assert heads <= {p for m, p in documented if m == "GET"}
    # and the document promises nothing the app does not serve
    assert documented <= served
    assert ("GET", "/api/v1/openapi.json") in documented
    assert ("GET", "/api/v1/builds/{id}/log") in documented


async def test_document_is_valid_openapi_31(client: Client) -> None:
    doc = await document(client)
    assert doc["openapi"].startswith("3.1")
    validate(doc)  # raises on any violation of the OpenAPI 3.1 schema
    broken = {**doc, "paths": {"/api/v1/x": {"get": {"responses": {"200": {}}}}}}
    with pytest.raises(OpenAPIValidationError):
        validate(broken)  # the validator does reject (a response needs a description)


async def test_operations_declare_what_they_need(client: Client) -> None:
    doc = await document(client)
    schemes = doc["components"]["securitySchemes"]
    assert schemes["bearer"]["scheme"] == "bearer" and "/auth/token" in \
        schemes["bearer"]["description"]
    assert schemes["basic"]["scheme"] == "basic"
    ops = {(m, p): op for p, item in doc["paths"].items() for m, op in item.items()}
    assert len({op["operationId"] for op in ops.values()}) == len(ops)
    for (method, path), op in ops.items():
        assert op["summary"], (method, path)
        assert "default" in op["responses"], (method, path)  # the catalogue's errors
        for name in re.findall(r"\{(\w+)\}", path):
            assert any(p["in"] == "path" and p["name"] == name
                       for p in op.get("parameters", [])), (method, path, name)
    # reading is open to anyone; changing needs an account
    assert {} in ops[("get", "/api/v1/images")]["security"]
    assert {} not in ops[("post", "/api/v1/releases/oob")]["security"]
    assert ops[("post", "/api/v1/releases/oob")]["x-strata-needs"] == "releng"
    body = ops[("post", "/api/v1/namespaces")]["requestBody"]["content"]["application/json"]
    assert body["schema"]["required"] == ["name"]
    plan = {p["name"]: p for p in ops[("get", "/api/v1/plan")]["parameters"]}
    assert plan["count"]["schema"]["maximum"] == 100
    notes = ops[("get", "/api/v1/releases/{name}/notes.md")]["responses"]["200"]
    assert "text/markdown" in notes["content"]


async def test_declared_body_schema_validates(client: Client) -> None:
    """The body the document declares is the one the route checks (400 naming the field)."""
    resp = await client.post("/api/v1/namespaces", json={"dist_tag": "f25docker"},
                             headers=ADMIN)
    assert resp.status == 400
    err = (await resp.json())["errors"][0]
    assert err["code"] == "INVALID" and "missing field 'name'" in err["message"]
    resp = await client.post("/api/v1/namespaces", json={"name": "f25", "dist_tag": 25},
                             headers=ADMIN)
    assert resp.status == 400
    err = (await resp.json())["errors"][0]
    assert err["detail"] == {"field": "dist_tag"}, err
    resp = await client.patch("/api/v1/namespaces/f25", json={"anchor": "2025-01-01"},
                              headers=ADMIN)
    assert resp.status == 400
    assert "unknown field(s) ['anchor']" in (await resp.json())["errors"][0]["message"]
    resp = await client.post("/api/v1/namespaces", json={"name": "f26", "dist_tag": "f26d",
                                                         "interval_days": "7"}, headers=ADMIN)
    assert resp.status == 201, await resp.text()  # an integer field takes its digits too
    assert (await resp.json())["interval_days"] == 7


async def test_body_is_checked_only_after_permission(client: Client) -> None:
    """An anonymous bad body is still 401: permission before body."""
    resp = await client.post("/api/v1/namespaces", json={"dist_tag": 25})
    assert resp.status == 401


@pytest.mark.parametrize(("query", "field"), [
    ("count=0", "count"), ("count=101", "count"), ("count=x", "count"),
    ("count=" + "9" * 40, "count"),
])
async def test_declared_query_parameters_validate(client: Client, query: str,
                                                  field: str) -> None:
    resp = await client.get(f"/api/v1/plan?{query}")
    assert resp.status == 400
    err = (await resp.json())["errors"][0]
    assert err["code"] == "INVALID" and repr(field) in err["message"], err


async def test_enum_query_parameters(client: Client) -> None:
    for path in ("/api/v1/candidates?status=nope", "/api/v1/reviews?status=nope",
                 "/api/v1/builds?state=nope", "/api/v1/images?stale=maybe",
                 "/api/v1/webhooks/deliveries?webhook=" + "9" * 30):
        resp = await client.get(path, headers=ADMIN)
        assert resp.status == 400, path
    resp = await client.get("/api/v1/candidates?status=all")
    assert resp.status == 200
    assert await resp.json() == {"candidates": []}
