"""Small OCI objects, challenge parsing and raw HTTP for the auth tests."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient

from support.raw_http import raw_request as raw_request

Client = TestClient[web.Request, web.Application]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Image:
    config: bytes
    layer: bytes
    manifest: bytes

    @property
    def digest(self) -> str:
        return digest(self.manifest)

    @property
    def layer_digest(self) -> str:
        return digest(self.layer)

    @property
    def blobs(self) -> tuple[bytes, bytes]:
        return (self.config, self.layer)


def make_image(seed: str) -> Image:
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "config": {"Labels": {"seed": seed}},
                         "rootfs": {"type": "layers", "diff_ids": []}},
                        sort_keys=True).encode()
    layer = hashlib.sha512(seed.encode()).digest() * 4
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": digest(config), "size": len(config)},
        "layers": [{"mediaType": OCI_LAYER, "digest": digest(layer), "size": len(layer)}],
    }, sort_keys=True).encode()
    return Image(config, layer, manifest)


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


_PARAM = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_challenge(header: str) -> dict[str, str]:
    """``Bearer realm="…",service="…",scope="…"`` -> its parameters."""
    scheme, _, rest = header.partition(" ")
    assert scheme == "Bearer", header
    return {k: v.replace('\\"', '"').replace("\\\\", "\\") for k, v in _PARAM.findall(rest)}


async def error_code(resp: ClientResponse) -> str:
    doc = json.loads(await resp.read())
    assert list(doc) == ["errors"], doc
    code: str = doc["errors"][0]["code"]
    return code


async def assert_refused(resp: ClientResponse, status: int, code: str) -> dict[str, Any]:
    body = await resp.read()
    assert resp.status == status, (resp.status, body[:300])
    doc: dict[str, Any] = json.loads(body) if body else {}
    if resp.method != "HEAD":
        assert doc["errors"][0]["code"] == code, doc
    if status == 401 and resp.url.path.startswith("/v2"):
        parse_challenge(resp.headers["WWW-Authenticate"])
    elif status == 401:
        assert resp.headers["WWW-Authenticate"].startswith("Basic realm=")
    return doc


