"""Assertions over the registry's HTTP answers, shared by the interop modules."""

from __future__ import annotations

import json
from typing import Any

from support.clients import sha256_digest
from support.server import Response, StrataServer

ACCEPT_ALL = ", ".join([
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
])
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


def get_manifest(server: StrataServer, repo: str, reference: str) -> Response:
    """GET the manifest and check that HEAD, GET and the body all agree on its digest."""
    path = f"/v2/{repo}/manifests/{reference}"
    head = server.request("HEAD", path, headers={"Accept": ACCEPT_ALL, **server.admin_headers})
    assert head.status == 200, (head, path)
    resp = server.request("GET", path, headers={"Accept": ACCEPT_ALL, **server.admin_headers})
    assert resp.status == 200, (resp, resp.body[:500])
    digest = resp.header("Docker-Content-Digest")
    assert digest == sha256_digest(resp.body)
    assert head.header("Docker-Content-Digest") == digest
    assert head.header("Content-Type") == resp.header("Content-Type")
    assert head.header("Content-Length") == str(len(resp.body))
    if reference.startswith("sha256:"):
        assert digest == reference
    return resp


def manifest_json(server: StrataServer, repo: str, reference: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(get_manifest(server, repo, reference).body)
    return doc


def get_blob(server: StrataServer, repo: str, digest: str) -> bytes:
    resp = server.request("GET", f"/v2/{repo}/blobs/{digest}", headers=server.admin_headers)
    assert resp.status == 200, (resp, repo, digest)
    assert resp.header("Docker-Content-Digest") == digest
    assert sha256_digest(resp.body) == digest
    return resp.body


def assert_manifest_unknown(server: StrataServer, repo: str, reference: str) -> None:
    resp = server.request("GET", f"/v2/{repo}/manifests/{reference}",
                          headers={"Accept": ACCEPT_ALL, **server.admin_headers})
    assert resp.status == 404, resp
    codes = [e["code"] for e in json.loads(resp.body)["errors"]]
    assert codes == ["MANIFEST_UNKNOWN"], codes
