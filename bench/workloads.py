"""The workloads, as aiohttp clients speaking OCI Distribution v1.1 to one registry.

Every request is checked for the status the spec requires, so a registry that answers quickly
by failing does not look fast. Bodies are streamed from ``blobdata`` generators.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
import blobdata
from yarl import URL

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MANIFEST_ACCEPT = f"{OCI_MANIFEST}, {DOCKER_MANIFEST}"
_LINK_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')
MIB = 1 << 20


class ProtocolError(RuntimeError):
    pass


async def _expect(resp: aiohttp.ClientResponse, *statuses: int) -> None:
    if resp.status not in statuses:
        body = (await resp.read())[:500]
        raise ProtocolError(f"{resp.method} {resp.url} -> {resp.status} "
                            f"(wanted {statuses}): {body!r}")


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Client:
    def __init__(self, base: str, session: aiohttp.ClientSession) -> None:
        self.base = URL(base)
        self.session = session

    # -- helpers -----------------------------------------------------------------------------
    def _url(self, path: str) -> URL:
        return self.base.join(URL(path))

    def _location(self, resp: aiohttp.ClientResponse, **query: str) -> URL:
        """The upload Location, kept byte for byte (distribution signs its ``_state``)."""
        loc = resp.headers.get("Location")
        if not loc:
            raise ProtocolError(f"{resp.method} {resp.url}: no Location header")
        if query:
            extra = "&".join(f"{k}={quote(v, safe='')}" for k, v in query.items())
            loc += ("&" if "?" in loc else "?") + extra
        url = URL(loc, encoded=True)
        if not url.is_absolute():
            url = URL(str(self.base).rstrip("/") + loc, encoded=True)
        return url

    async def start_upload(self, repo: str) -> URL:
        async with self.session.post(self._url(f"/v2/{repo}/blobs/uploads/")) as resp:
            await _expect(resp, 202)
            return self._location(resp)

    # -- big blobs ---------------------------------------------------------------------------
    async def push_monolithic(self, repo: str, seed: int, size: int) -> str:
        """POST, then one PUT carrying the whole body (streamed, with Content-Length)."""
        digest = blobdata.digest(seed, size)
        loc = await self.start_upload(repo)
        put = URL(str(loc) + ("&" if loc.query_string else "?") + "digest=" + quote(digest),
                  encoded=True)
        async with self.session.put(
                put, data=blobdata.aiter_chunks(seed, size),
                headers={"Content-Length": str(size),
                         "Content-Type": "application/octet-stream"}) as resp:
            await _expect(resp, 201)
        return digest

    async def push_chunked(self, repo: str, seed: int, size: int, chunk: int) -> str:
        """POST, PATCH ``chunk``-byte pieces with Content-Range, then an empty PUT."""
        digest = blobdata.digest(seed, size)
        loc = await self.start_upload(repo)
        for start in range(0, size, chunk):
            end = min(start + chunk, size)
            async with self.session.patch(
                    loc, data=blobdata.aiter_chunks(seed, size, start, end),
                    headers={"Content-Length": str(end - start),
                             "Content-Range": f"{start}-{end - 1}",
                             "Content-Type": "application/octet-stream"}) as resp:
                await _expect(resp, 202)
                loc = self._location(resp)
        put = URL(str(loc) + ("&" if loc.query_string else "?") + "digest=" + quote(digest),
                  encoded=True)
        async with self.session.put(put, headers={"Content-Length": "0"}) as resp:
            await _expect(resp, 201)
        return digest

    async def get_blob(self, repo: str, digest: str, size: int, verify: bool = False) -> None:
        h = hashlib.sha256() if verify else None
        got = 0
        async with self.session.get(self._url(f"/v2/{repo}/blobs/{digest}")) as resp:
            await _expect(resp, 200)
            async for piece in resp.content.iter_any():
                got += len(piece)
                if h is not None:
                    h.update(piece)
        if got != size:
            raise ProtocolError(f"GET blob {digest}: {got} bytes, wanted {size}")
        if h is not None and "sha256:" + h.hexdigest() != digest:
            raise ProtocolError(f"GET blob {digest}: content does not match its digest")

    # -- small blobs and manifests -----------------------------------------------------------
    async def push_small_blob(self, repo: str, data: bytes, digest: str | None = None) -> str:
        """What an image pusher does per blob: HEAD (absent), POST, PUT with the body."""
        digest = digest or sha256(data)
        async with self.session.head(self._url(f"/v2/{repo}/blobs/{digest}")) as resp:
            await _expect(resp, 200, 404)
            if resp.status == 200:
                return digest
        loc = await self.start_upload(repo)
        put = URL(str(loc) + ("&" if loc.query_string else "?") + "digest=" + quote(digest),
                  encoded=True)
        async with self.session.put(put, data=data,
                                    headers={"Content-Type": "application/octet-stream"}) as resp:
            await _expect(resp, 201)
        return digest

    async def push_blob_single_post(self, repo: str, data: bytes) -> str:
        """``POST ?digest=`` with the body; a registry that answers 202 instead (distribution
        2.8 ignores ``digest`` on POST) gets the PUT the spec prescribes as the fallback."""
        digest = sha256(data)
        async with self.session.post(
                self._url(f"/v2/{repo}/blobs/uploads/").with_query(digest=digest), data=data,
                headers={"Content-Type": "application/octet-stream"}) as resp:
            await _expect(resp, 201, 202)
            if resp.status == 201:
                return digest
            loc = self._location(resp, digest=digest)
        async with self.session.put(loc, data=data,
                                    headers={"Content-Type": "application/octet-stream"}) as resp:
            await _expect(resp, 201)
        return digest

    async def put_manifest(self, repo: str, ref: str, body: bytes) -> str:
        async with self.session.put(self._url(f"/v2/{repo}/manifests/{ref}"), data=body,
                                    headers={"Content-Type": OCI_MANIFEST}) as resp:
            await _expect(resp, 201)
            return resp.headers.get("Docker-Content-Digest") or sha256(body)

    async def push_image(self, repo: str, tag: str, image: SmallImage) -> str:
        for data, digest in image.blobs():
            await self.push_small_blob(repo, data, digest)
        return await self.put_manifest(repo, tag, image.manifest)

    async def walk_tags(self, repo: str, n: int, max_pages: int = 10_000) -> TagWalk:
        url: URL | None = self._url(f"/v2/{repo}/tags/list").with_query(n=str(n))
        pages: list[int] = []
        tags: list[str] = []
        t0 = time.perf_counter()
        while url is not None and len(pages) < max_pages:
            async with self.session.get(url) as resp:
                await _expect(resp, 200)
                body = await resp.json(content_type=None)
                link = resp.headers.get("Link")
            page = body.get("tags") or []
            pages.append(len(page))
            tags.extend(page)
            url = None
            if link:
                m = _LINK_NEXT.search(link)
                if m:
                    nxt = URL(m.group(1), encoded=True)
                    url = nxt if nxt.is_absolute() else URL(
                        str(self.base).rstrip("/") + m.group(1), encoded=True)
        return TagWalk(time.perf_counter() - t0, pages, tags)


@dataclass
class TagWalk:
    seconds: float
    pages: list[int]
    tags: list[str]

    def honoured(self, n: int, expected: list[str]) -> bool:
        return (all(p <= n for p in self.pages) and len(self.pages) >= -(-len(expected) // n)
                and self.tags == sorted(expected))


@dataclass
class SmallImage:
    layers: list[bytes]
    layer_digests: list[str]
    config: bytes
    config_digest: str
    manifest: bytes

    @classmethod
    def make(cls, rng: random.Random, layer_sizes: tuple[int, int] = (4096, 65536),
             nlayers: int = 2) -> SmallImage:
        layers = [rng.randbytes(rng.randint(*layer_sizes)) for _ in range(nlayers)]
        digests = [sha256(b) for b in layers]
        config = json.dumps({
            "architecture": "amd64", "os": "linux",
            "config": {"Env": ["PATH=/usr/bin:/bin"], "Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": digests},
            "history": [{"created_by": f"bench layer {i}"} for i in range(nlayers)],
        }, separators=(",", ":")).encode()
        cdigest = sha256(config)
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": cdigest, "size": len(config)},
            "layers": [{"mediaType": OCI_LAYER, "digest": d, "size": len(b)}
                       for d, b in zip(digests, layers, strict=True)],
        }, separators=(",", ":")).encode()
        return cls(layers, digests, config, cdigest, manifest)

    def blobs(self) -> list[tuple[bytes, str]]:
        return [*zip(self.layers, self.layer_digests, strict=True),
                (self.config, self.config_digest)]


async def push_many(client: Client, jobs: list[tuple[str, str, SmallImage]],
                    workers: int) -> float:
    """Push ``jobs`` (repo, tag, image) with ``workers`` concurrent pushers; returns seconds."""
    queue: asyncio.Queue[tuple[str, str, SmallImage]] = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)

    async def worker() -> None:
        while True:
            try:
                repo, tag, image = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            await client.push_image(repo, tag, image)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    return time.perf_counter() - t0


async def tag_many(client: Client, repo: str, manifest: bytes, tags: list[str],
                   concurrency: int = 16) -> float:
    sem = asyncio.Semaphore(concurrency)

    async def one(tag: str) -> None:
        async with sem:
            await client.put_manifest(repo, tag, manifest)

    t0 = time.perf_counter()
    await asyncio.gather(*(one(t) for t in tags))
    return time.perf_counter() - t0


def new_session(limit: int = 100, timeout: float = 600.0) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit, force_close=False),
        timeout=aiohttp.ClientTimeout(total=timeout, sock_connect=10),
        auto_decompress=False)


def describe(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True)
