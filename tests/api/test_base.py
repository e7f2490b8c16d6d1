"""The /v2/ base, routing, method handling, repository names and the error body contract."""

from __future__ import annotations

import json

import pytest
from yarl import URL

from .helpers import API_VERSION, Client, error_of, push_blob, raw_request
from .oci_fixtures import digest

DIGEST = digest(b"x")


async def test_base_answers_200_with_api_version(client: Client) -> None:
    for method in ("GET", "HEAD"):
        resp = await client.request(method, "/v2/")
        assert resp.status == 200
        assert resp.headers[API_VERSION[0]] == API_VERSION[1]
    resp = await client.get("/v2/")
    assert await resp.json() == {}


async def test_v2_without_slash_redirects(client: Client) -> None:
    resp = await client.get("/v2", allow_redirects=False)
    assert resp.status == 301
    assert resp.headers["Location"] == "/v2/"
    assert resp.headers[API_VERSION[0]] == API_VERSION[1]


async def test_api_version_header_on_success_and_error_responses(client: Client) -> None:
    d = await push_blob(client, "repo", b"abc")
    responses = [
        await client.post("/v2/repo/blobs/uploads/"),           # 202
        await client.get(f"/v2/repo/blobs/{d}"),                 # 200
        await client.head(f"/v2/repo/blobs/{d}"),                # 200
        await client.get("/v2/repo/tags/list"),                  # 200
        await client.get("/v2/_catalog"),                        # 200
        await client.get("/v2/repo/manifests/nope"),             # 404
        await client.get("/v2/Bad/tags/list"),                   # 400
        await client.put("/v2/repo/tags/list"),                  # 405
        await client.get("/v2/no/such/route"),                   # 404
    ]
    for resp in responses:
        assert resp.headers.get(API_VERSION[0]) == API_VERSION[1], (resp.url, resp.status)


@pytest.mark.parametrize("path", [
    "/v2/repo/nothing",
    "/v2/repo/tags/list/",
    "/v2/repo/blobs/",
    "/v2/repo/manifests/",
    "/v2/repo/referrers/",
    "/v2//manifests/latest",
    "/v2/manifests/latest",
    "/v2/_catalog/x",
])
async def test_unknown_route_is_a_json_404(client: Client, path: str) -> None:
    resp = await client.get(URL(path, encoded=True))
    await error_of(resp, 404, "NOT_FOUND")


async def test_unknown_path_outside_v2_is_a_json_404(client: Client) -> None:
    resp = await client.get("/nope")
    assert resp.status == 404
    assert (await resp.json())["errors"][0]["code"] == "NOT_FOUND"
    assert API_VERSION[0] not in resp.headers


@pytest.mark.parametrize(("method", "path"), [
    ("POST", "/v2/"),
    ("DELETE", "/v2/"),
    ("PUT", "/v2/repo/tags/list"),
    ("DELETE", "/v2/repo/tags/list"),
    ("POST", "/v2/repo/manifests/latest"),
    ("PATCH", "/v2/repo/manifests/latest"),
    ("PUT", f"/v2/repo/blobs/{DIGEST}"),
    ("POST", f"/v2/repo/blobs/{DIGEST}"),
    ("PATCH", f"/v2/repo/blobs/{DIGEST}"),
    ("GET", "/v2/repo/blobs/uploads/"),
    ("PUT", "/v2/repo/blobs/uploads/"),
    ("POST", "/v2/repo/blobs/uploads/someid"),
    ("DELETE", f"/v2/repo/referrers/{DIGEST}"),
    ("PUT", f"/v2/repo/referrers/{DIGEST}"),
    ("POST", "/v2/_catalog"),
    ("DELETE", "/v2/_catalog"),
])
async def test_wrong_method_is_405_unsupported(client: Client, method: str, path: str) -> None:
    resp = await client.request(method, path)
    await error_of(resp, 405, "UNSUPPORTED")
    allow = {m.strip() for m in resp.headers.get("Allow", "").split(",")}
    assert method not in allow and allow - {""}, resp.headers


INVALID_NAMES = [
    "Upper",
    "repo/Upper",
    "a..b",
    "a__-b",
    "-lead",
    "trail-",
    "trail.",
    "a//b",
    "a/",  # trailing slash
    "_x",
    "a%20b",
    "a%2e%2e",
    "%2e%2e",
    "a/%2e%2e/b",
    "a/%2e/b",
    "x" * 256,
    "a/" + "b" * 254,
    "%C3%A9",
]

ENDPOINTS = [
    ("GET", "/v2/{}/manifests/latest"),
    ("HEAD", "/v2/{}/manifests/latest"),
    ("PUT", "/v2/{}/manifests/latest"),
    ("GET", "/v2/{}/tags/list"),
    ("POST", "/v2/{}/blobs/uploads/"),
    ("GET", "/v2/{}/blobs/" + DIGEST),
    ("GET", "/v2/{}/referrers/" + DIGEST),
]


@pytest.mark.parametrize("name", INVALID_NAMES)
async def test_invalid_name_is_400_name_invalid(client: Client, name: str) -> None:
    for method, template in ENDPOINTS:
        resp = await client.request(method, URL(template.format(name), encoded=True))
        if method == "HEAD":
            assert resp.status == 400, template
            continue
        err = await error_of(resp, 400, "NAME_INVALID")
        assert "name" in err["detail"]


@pytest.mark.parametrize("target", [
    "/v2/a/../b/manifests/latest",
    "/v2/../v2/b/tags/list",
    "/v2/a/./b/tags/list",
    "/v2/a/%2e%2e/b/tags/list",
    "/v2/%2E%2E/tags/list",
])
async def test_dot_segments_sent_verbatim_are_name_invalid(client: Client, target: str) -> None:
    status, headers, body = await raw_request(client, "GET", target)
    assert status == 400
    assert headers[API_VERSION[0]] == API_VERSION[1]
    assert json.loads(body)["errors"][0]["code"] == "NAME_INVALID"


async def test_encoded_slash_is_a_path_separator(client: Client) -> None:
    """As in distribution, the name is matched on the decoded path: a%2Fb is a/b."""
    await push_blob(client, "a/b", b"blob")
    resp = await client.get(URL("/v2/a%2Fb/tags/list", encoded=True))
    assert resp.status == 200
    assert (await resp.json())["name"] == "a/b"


@pytest.mark.parametrize("name", [
    "a", "a/b/c/d", "a.b", "a_b", "a__b", "a-b", "a---b", "0", "x" * 255,
    "a/" + "b" * 253,
])
async def test_valid_names_are_accepted(client: Client, name: str) -> None:
    resp = await client.get(f"/v2/{name}/tags/list")
    await error_of(resp, 404, "NAME_UNKNOWN")
    d = await push_blob(client, name, b"named")
    resp = await client.get(f"/v2/{name}/blobs/{d}")
    assert resp.status == 200 and await resp.read() == b"named"
