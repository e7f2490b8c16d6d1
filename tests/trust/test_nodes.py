"""Release keys on several nodes (PostgreSQL + S3, two ``strata serve`` processes given the
same signing passphrase): the key one node creates signs on the other, a rotation made on one
node is what the other signs with next, both serve the same public keys; a node with another
passphrase cannot sign and so publishes nothing (503, the release rolled back)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from strata.client.registry import RegistryClient
from strata.oci import mediatypes as mt
from strata.trust import cosign, keys
from support.server import StrataServer

pytestmark = [pytest.mark.server]

SHARED = "the passphrase every node of this registry is given"


def config_of(version: str, release: str) -> bytes:
    return json.dumps({"architecture": "amd64", "os": "linux", "config": {"Labels": {
        "name": "x", "version": version, "release": release}},
        "rootfs": {"type": "layers", "diff_ids": []}}, sort_keys=True).encode()


def api(node: StrataServer, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    resp = node.request(method, path, headers={"Content-Type": "application/json"},
                        body=None if body is None else json.dumps(body).encode())
    return resp.status, json.loads(resp.body) if resp.body else None


async def push(node: StrataServer, version: str, release: str) -> str:
    async with aiohttp.ClientSession() as session:
        client = RegistryClient(node.url, session)
        layer = hashlib.sha512(f"{version}-{release}".encode()).digest()
        return await client.push_image("f25/x", None, [layer], config_of(version, release))


def signature_ok(node: StrataServer, digest: str, public_pem: str) -> bool:
    resp = node.request("GET", f"/v2/f25/x/manifests/{cosign.signature_tag(digest)}",
                        headers={"Accept": mt.OCI_MANIFEST})
    assert resp.status == 200, resp.body
    for layer in cosign.layers_of(resp.body):
        payload = node.request("GET", f"/v2/f25/x/blobs/{layer.digest}").body
        parsed = cosign.parse_payload(payload)
        if parsed.digest == digest and keys.verify(public_pem, payload,
                                                   base64.b64decode(layer.signature_b64)):
            return True
    return False


def test_nodes_share_release_keys(tmp_path: Path,
                                  scale_out_stores: tuple[list[str], dict[str, str]]) -> None:
    args, env = scale_out_stores
    common = {**env, "STRATA_SCHEDULER_INTERVAL": "0", "STRATA_PUBLIC_HOST": "registry.example"}
    nodes = [StrataServer(tmp_path / f"node{i}", "--workers", "1", "--no-auth",
                          "--gc-interval", "0", *args,
                          env={**common, "STRATA_SIGNING_PASSPHRASE": SHARED}).start()
             for i in range(2)]
    a, b = nodes
    try:
        assert api(a, "POST", "/api/v1/namespaces", {"name": "f25", "dist_tag": "f25docker"}
                   )[0] == 201
        assert api(a, "POST", "/api/v1/images", {"repository": "f25/x",
                                                 "reason": "fixture"})[0] == 201
        first = asyncio.run(push(a, "130", "1.f25docker"))
        assert api(a, "POST", "/api/v1/candidates", {"reference": f"f25/x@{first}"})[0] == 201
        status, _ = api(b, "POST", "/api/v1/releases/publish", {"namespace": "f25"})
        assert status in (200, 201)
        [key_b] = api(b, "GET", "/api/v1/namespaces/f25/keys")[1]["keys"]
        assert api(a, "GET", "/api/v1/namespaces/f25/keys")[1]["keys"] == [key_b]
        assert signature_ok(a, first, key_b["public_key"])

        status, rotated = api(a, "POST", "/api/v1/namespaces/f25/keys/rotate")
        assert status == 201
        new = rotated["keys"][0]
        second = asyncio.run(push(a, "130", "2.f25docker"))
        status, _ = api(b, "POST", "/api/v1/releases/oob", {
            "references": [f"f25/x@{second}"], "advisories": ["FEDORA-1"], "reason": "CVE"})
        assert status in (200, 201)
        assert signature_ok(a, second, new["public_key"])
        assert not signature_ok(a, second, key_b["public_key"])
        assert signature_ok(b, first, key_b["public_key"])  # the old one still verifies
        assert a.request("GET", "/keys/f25.pub").body == b.request("GET", "/keys/f25.pub").body

        # a node given another passphrase cannot open the key: it publishes nothing
        with StrataServer(tmp_path / "node-wrong", "--workers", "1", "--no-auth",
                          "--gc-interval", "0", *args,
                          env={**common, "STRATA_SIGNING_PASSPHRASE": "not the same one at all"}
                          ) as c:
            third = asyncio.run(push(c, "130", "3.f25docker"))
            status, body = api(c, "POST", "/api/v1/releases/oob", {
                "references": [f"f25/x@{third}"], "advisories": ["FEDORA-2"], "reason": "x"})
            assert status == 503, body
            assert body["errors"][0]["code"] == "UNAVAILABLE"
            assert "passphrase" in body["errors"][0]["message"]
            assert "not the same one" not in json.dumps(body) + c.log_text()
        latest = a.request("HEAD", "/v2/f25/x/manifests/latest",
                           headers={"Accept": mt.OCI_MANIFEST})
        assert latest.header("Docker-Content-Digest") == second
        assert a.request("GET", f"/v2/f25/x/manifests/{cosign.signature_tag(third)}"
                         ).status == 404
    finally:
        for node in nodes:
            node.stop()
