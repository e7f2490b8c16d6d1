"""Every operation of ``/api/v1/openapi.json`` driven by schemathesis against a live
``strata serve``, with inputs generated from the document, anonymously and as the admin:
no answer is a 5xx, and every answer matches what the document declares (status, content
type, schema). On SQLite and on PostgreSQL (which cannot store a NUL character: every
parameter is probed with one). Bounded: a few examples per operation and caller."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from support.server import StrataServer

pytestmark = pytest.mark.server

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def live(request: pytest.FixtureRequest,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[StrataServer]:
    """A server with no background work (no scheduler, no webhook delivery, no build
    runner) and a source allow-list nothing generated matches (nothing is cloned), seeded
    with a namespace and an image so that some generated requests find something."""
    base: Path = tmp_path_factory.mktemp("openapi-fuzz")
    database: list[str] = []
    if request.param == "postgres":
        cluster = request.getfixturevalue("postgres")
        database = ["--database-url", cluster.create_database("openapi_fuzz")]
    server = StrataServer(base, *database, "--build-concurrency", "0", "--gc-interval", "0",
                          "--source-allow", "file:///nothing-is-cloned-here/",
                          env={"STRATA_SCHEDULER_INTERVAL": "0",
                               "STRATA_WEBHOOK_INTERVAL": "0"})
    with server:
        for path, body in (("/api/v1/namespaces", {"name": "f25", "dist_tag": "f25docker",
                                                   "anchor": "2025-06-10"}),
                           ("/api/v1/images", {"repository": "f25/cockpit",
                                               "maintainers": ["admin"]})):
            resp = requests.post(server.url + path, json=body, headers=server.admin_headers,
                                 timeout=30)
            assert resp.status_code == 201, resp.text
        yield server


@pytest.fixture(scope="module")
def api_schema(live: StrataServer) -> Any:
    doc = requests.get(live.url + "/api/v1/openapi.json", timeout=30).json()
    schema = schemathesis.openapi.from_dict(doc)
    schema.config.base_url = live.url
    return schema


#: Examples per operation and generation mode (positive: valid inputs; negative: inputs the
#: document forbids, which must be refused with a 4xx, never a 5xx); raise it to hunt.
EXAMPLES = int(os.environ.get("STRATA_API_FUZZ_EXAMPLES", "2"))
MAX_REQUEST_LINE = 8190  # aiohttp's limit


def request_line(request: Any) -> int:
    """The length of ``METHOD /path?query HTTP/1.1``."""
    target = urlsplit(request.url)
    path = target.path + ("?" + target.query if target.query else "")
    return len(f"{request.method} {path} HTTP/1.1")


FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))


def check(case: Any, live: StrataServer, calls: list[int]) -> None:
    for headers in ({}, live.admin_headers):
        calls.append(1)
        response = case.call(base_url=live.url, headers=headers, timeout=30)
        if request_line(response.request) > MAX_REQUEST_LINE:
            # aiohttp's HTTP parser refuses a request line over 8190 bytes itself, before
            # any route: a plain-text 400 (negative inputs far over a maxLength)
            assert response.status_code == 400, response.request.url[:200]
            continue
        case.validate_response(response, checks=CHECKS)
        if response.status_code >= 400:
            errors = json.loads(response.content)["errors"]
            assert errors and all(e["code"] and e["message"] for e in errors)


def test_generated_requests_get_declared_answers(api_schema: Any, live: StrataServer) -> None:
    failures: list[str] = []
    operations = 0
    calls: list[int] = []
    for result in api_schema.get_all_operations():
        operation = result.ok()
        operations += 1
        for mode in GenerationMode:

            @FUZZ
            @given(case=operation.as_strategy(mode))
            def run(case: Any) -> None:
                check(case, live, calls)
            try:
                run()
            except Unsatisfiable:  # nothing of this operation can be made invalid
                assert mode is GenerationMode.NEGATIVE, operation.path
            except (Exception, BaseExceptionGroup) as exc:  # every operation is tried
                failures.append(f"{operation.method.upper()} {operation.path} ({mode.value}): "
                                f"{exc}"[:3000])
    assert operations > 30 and len(calls) >= 4 * operations  # anonymous and admin
    assert not failures, "\n\n".join(failures)


def test_nul_odd_text_and_big_ids_in_every_parameter(api_schema: Any,
                                                     live: StrataServer) -> None:
    """Text PostgreSQL cannot store (NUL), odd and over-long text, ids past a 32-bit integer
    in every path and query parameter and body field: refused or not found, never a 5xx."""
    doc = requests.get(live.url + "/api/v1/openapi.json", timeout=30).json()
    # ... and ids past PostgreSQL's integer (2**31 - 1): once a 500 there
    probes = ["a\x00b", "%ff", "\u2603" * 300, "../..", " ", "2147483648", "222380821508"]
    nul_login = {"Authorization": "Basic " + base64.b64encode(b"ad\x00min:pw").decode()}
    failures = []
    for page in ("/a%00b", "/a%00b/c", "/search?q=a%00b", "/v1/search?q=a%00b",
                 "/-/releases/a%00b"):  # the pages and podman's search: the same guard
        resp = requests.get(live.url + page, timeout=30)
        if resp.status_code >= 500:
            failures.append(f"GET {page}: {resp.status_code}")
    for query in ({"account": "a\x00b"}, {"scope": "repository:a\x00b:pull"},
                  {"service": "a\x00b"}):
        for headers in ({}, nul_login, live.admin_headers):
            resp = requests.get(live.url + "/auth/token", params=query, headers=headers,
                                timeout=30)
            if resp.status_code >= 500:
                failures.append(f"GET /auth/token {query}: {resp.status_code}")
    for path, item in doc["paths"].items():
        for method, op in item.items():
            params = op.get("parameters", [])
            for probe in probes:
                url_path = path
                query = {}
                for p in params:
                    if p["in"] == "path":
                        url_path = url_path.replace("{" + p["name"] + "}",
                                                    requests.utils.quote(probe, safe=""))
                    else:
                        query[p["name"]] = probe
                body = None
                if "requestBody" in op:
                    schema = op["requestBody"]["content"]["application/json"]["schema"]
                    body = {name: probe for name in schema.get("properties", {})}
                    body[probe] = probe
                for headers in ({}, live.admin_headers, nul_login):
                    resp = requests.request(method.upper(), live.url + url_path, params=query,
                                            headers=headers, timeout=30, json=body)
                    if resp.status_code >= 500:
                        failures.append(f"{method.upper()} {url_path} {query}: "
                                        f"{resp.status_code} {resp.text[:200]}")
    assert not failures, "\n".join(failures[:40])
