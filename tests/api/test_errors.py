"""Every error answer is the spec's JSON body with the catalogue's status, never a 500."""

from __future__ import annotations

import json

import pytest
from yarl import URL

from strata.errors import Code

from .helpers import API_VERSION, Client, push_blob, push_manifest, start_upload
from .oci_fixtures import digest, image

D = digest(b"x")
BIG = "9" * 40

ODD_REQUESTS: list[tuple[str, str, dict[str, str], bytes]] = [
    ("OPTIONS", "/v2/", {}, b""),
    ("OPTIONS", "/v2/r/manifests/latest", {}, b""),
    ("GET", "/v2/r/manifests/" + "a" * 5000, {}, b""),
    ("GET", "/v2/" + "a/" * 2000 + "tags/list", {}, b""),
    ("GET", "/v2/r/blobs/{blob}", {"Range": f"bytes={BIG}-"}, b""),
    ("GET", "/v2/r/blobs/{blob}", {"Range": f"bytes=0-{BIG}"}, b""),
    ("GET", "/v2/r/blobs/{blob}", {"Range": "bytes=--1"}, b""),
    ("GET", "/v2/r/blobs/{blob}", {"Range": "bytes=-0"}, b""),
    ("HEAD", "/v2/r/blobs/{blob}", {"Range": "bytes=99-"}, b""),
    ("PATCH", "{upload}", {"Content-Range": f"0-{BIG}"}, b"abc"),
    ("PATCH", "{upload}", {"Content-Range": f"{BIG}-{BIG}"}, b"abc"),
    ("PATCH", "{upload}", {"Content-Range": "0-2", "Content-Type": "text/plain"}, b"abc"),
    ("PUT", "{upload}?digest=" + D + "&digest=" + D, {}, b"x"),
    ("PUT", "{upload}?digest=%00", {}, b""),
    ("POST", "/v2/r/blobs/uploads/?mount=" + D + "&from=" + "a" * 300, {}, b""),
    ("POST", "/v2/r/blobs/uploads/?digest=" + D + "&mount=", {}, b"x"),
    ("POST", "/v2/r/blobs/uploads/?digest=", {}, b""),
    ("PUT", "/v2/r/manifests/v1", {"Content-Type": ""}, b"{}"),
    ("PUT", "/v2/r/manifests/v1", {"Content-Type": "application/json"}, b'{"manifests": 1}'),
    ("PUT", "/v2/r/manifests/v1", {"Content-Type": "application/json"}, b'{"mediaType": 5}'),
    ("PUT", "/v2/r/manifests/v1", {"Content-Type": "application/json"},
     b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", '
     b'"manifests": [{"mediaType": "x/y", "digest": "' + D.encode() + b'", "size": 1}]}'),
    ("PUT", "/v2/r/manifests/v1", {"Content-Type": "application/json"}, b"null"),
    ("PUT", "/v2/r/manifests/v1?tag=", {}, b"{}"),
    ("GET", "/v2/r/tags/list?n=1&n=x", {}, b""),
    ("GET", "/v2/r/tags/list?last=" + "z" * 5000, {}, b""),
    ("GET", "/v2/_catalog?last=%00", {}, b""),
    ("GET", "/v2/r/referrers/" + D + "?artifactType=" + "x" * 3000, {}, b""),
    ("DELETE", "/v2/r/blobs/uploads/" + "f" * 100, {}, b""),
    ("GET", "/v2/r/blobs/uploads/%00", {}, b""),
]


@pytest.mark.parametrize(("method", "target", "headers", "body"), ODD_REQUESTS)
async def test_odd_requests_never_500(client: Client, method: str, target: str,
                                      headers: dict[str, str], body: bytes) -> None:
    blob = await push_blob(client, "r", b"0123456789")
    await push_manifest(client, "r", "v0", image())
    upload = await start_upload(client, "r")
    url = target.replace("{blob}", blob).replace("{upload}", upload)
    resp = await client.request(method, URL(url, encoded=True), headers=headers, data=body)
    raw = await resp.read()
    assert resp.status < 500, (resp.status, raw[:300])
    assert resp.headers.get(API_VERSION[0]) == API_VERSION[1]
    if resp.status >= 400 and method != "HEAD":
        assert resp.content_type == "application/json", raw[:300]
        errors = json.loads(raw)["errors"]
        assert errors and all(e["code"] in Code.__members__ for e in errors)
        assert Code[errors[0]["code"]].status == resp.status or errors[0]["code"] in (
            "MANIFEST_UNKNOWN", "BLOB_UPLOAD_INVALID", "SIZE_INVALID"), (resp.status, errors)


@pytest.mark.parametrize("code", list(Code))
def test_catalogue_statuses_are_http_errors(code: Code) -> None:
    assert 400 <= code.status <= 599
    assert code.message
