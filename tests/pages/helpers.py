"""Images with a help file and labels, pushed through the API, for the catalog's tests."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import warnings
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient

from strata.client.registry import RegistryClient

Client = TestClient[web.Request, web.Application]
RELENG = ("rel-eng", "x")  # with authentication off: the user recorded, unverified

HOSTILE = "<script>alert('pwned')</script><img src=x onerror=alert(1)>"
HELP = (f"# Cockpit\n\nA *web* console.\n\n{HOSTILE}\n\n[bad](javascript:alert(1)) "
        "[good](https://cockpit-project.org/)\n\n| a | b |\n|---|---|\n| 1 | 2 |\n")


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tar_layer(files: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, content in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return gzip.compress(raw.getvalue(), mtime=0)


def image_blobs(name: str, version: str, release: str, *, help_text: str | None = HELP,
                labels: dict[str, str] | None = None, salt: str = "") -> tuple[list[bytes], bytes]:
    layers = [tar_layer({"etc/os-release": f"{name}-{version}-{release}{salt}\n".encode()})]
    if help_text is not None:
        layers.append(tar_layer({"help.md": help_text.encode()}))
    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Labels": {"name": name, "version": version, "release": release,
                              **(labels or {})}},
        "rootfs": {"type": "layers",
                   "diff_ids": [sha256(gzip.decompress(layer)) for layer in layers]},
    }, sort_keys=True).encode()
    return layers, config


def oci(client: Client, user: tuple[str, str] = RELENG) -> RegistryClient:
    """A registry client as *user* (with authentication on, it takes the tokens the server's
    challenges name: pull on a first HEAD, then pull,push when a push asks for more)."""
    with warnings.catch_warnings():  # what RegistryClient takes for the token endpoint
        warnings.simplefilter("ignore", DeprecationWarning)
        basic = aiohttp.BasicAuth(*user)
    return RegistryClient(str(client.make_url("")), client.session, auth=basic)


def auth(user: tuple[str, str]) -> dict[str, str]:
    return {"Authorization": aiohttp.encode_basic_auth(*user)}


async def ok(resp: aiohttp.ClientResponse, status: int = 200) -> Any:
    body = await resp.read()
    assert resp.status == status, body[:1000]
    return json.loads(body)


async def push_build(client: Client, repo: str, version: str, release: str, *,
                     packages: list[dict[str, str]] | None = None,
                     user: tuple[str, str] = RELENG, **kw: Any) -> str:
    """Push a build by digest and register it as a candidate (with a package list)."""
    layers, config = image_blobs(repo.split("/")[-1], version, release, **kw)
    digest = await oci(client, user).push_image(repo, None, layers, config)
    await ok(await client.post("/api/v1/candidates", json={
        "reference": f"{repo}@{digest}",
        "source": {"url": "https://src.example/x.git", "commit": "a" * 40},
        "packages": packages if packages is not None else [
            {"name": "bash", "version": "5.2.15-3", "arch": "x86_64"},
            {"name": "cockpit-ws", "version": version, "arch": "x86_64"}]},
        headers=auth(user)), 201)
    return digest


async def seed(client: Client, user: tuple[str, str] = RELENG) -> dict[str, str]:
    """Namespace f25; f25/cockpit (130 and 129 released in f25-2025-06-10, 131 pending);
    root base image ``fedora``; an in-review image f25/newthing."""
    await ok(await client.post("/api/v1/namespaces", json={
        "name": "f25", "dist_tag": "f25docker", "anchor": "2025-06-10"}, headers=auth(user)), 201)
    await ok(await client.post("/api/v1/images", json={
        "repository": "f25/cockpit", "maintainers": ["alice"],
        "summary": f"Cockpit web console {HOSTILE}",
        "source_url": "https://src.example/cockpit.git", "source_branch": "f25",
        "reason": "test"}, headers=auth(user)), 201)
    await ok(await client.post("/api/v1/images", json={
        "repository": "fedora", "namespace": "f25", "summary": "The base",
        "reason": "test"}, headers=auth(user)), 201)
    await ok(await client.post("/api/v1/images", json={
        "repository": "f25/newthing", "status": "in-review", "reason": "test"},
        headers=auth(user)), 201)
    d129 = await push_build(client, "f25/cockpit", "129", "1.f25docker", user=user,
                            labels={"summary": HOSTILE})
    d130 = await push_build(client, "f25/cockpit", "130", "1.f25docker", user=user,
                            labels={"summary": HOSTILE, "url": "javascript:alert(1)"})
    base = await push_build(client, "fedora", "25", "1.f25docker", help_text=None, user=user)
    release = await ok(await client.post("/api/v1/releases/publish", json={}, headers=auth(user)),
                       201)
    d131 = await push_build(client, "f25/cockpit", "131", "1.f25docker", user=user)
    return {"129": d129, "130": d130, "131": d131, "base": base, "release": release["name"]}
