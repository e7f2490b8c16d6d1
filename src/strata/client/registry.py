"""RegistryClient: push and pull blobs and manifests over the OCI Distribution API.

Small and explicit: every method is one spec operation (or a well-known composition: a
monolithic or chunked blob push, an image copy). Errors come back as :class:`ClientError` with
the registry's error code.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import aiohttp

from strata.oci import mediatypes as mt

ACCEPT_MANIFESTS = ", ".join(sorted(mt.MANIFESTS))

#: The scopes of an ``insufficient_scope`` challenge -> a bearer token covering them, or None.
Rescope = Callable[[Sequence[str]], Awaitable[str | None]]


class ClientError(Exception):
    def __init__(self, status: int, code: str | None, message: str, *,
                 detail: Any = None) -> None:
        self.status = status
        self.code = code
        self.detail = detail  # the error's ``detail`` (JSON API answers)
        super().__init__(f"{status} {code or ''} {message}".strip())


@dataclass(frozen=True, slots=True)
class Manifest:
    digest: str
    media_type: str
    content: bytes

    def json(self) -> Any:
        return json.loads(self.content)


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _repository_of(path: str) -> str:
    """The repository a /v2/ path is about ("" for /v2/ and the catalog)."""
    rest = path.split("?", 1)[0]
    start = rest.find("/v2/")
    rest = rest[start + 4:] if start >= 0 else rest
    for marker in ("/blobs/", "/manifests/", "/tags/", "/referrers/"):
        if marker in rest:
            return rest.split(marker, 1)[0]
    return ""


def _parse_challenge(text: str) -> dict[str, str]:
    """``realm="…",service="…",scope="…"`` (values may contain commas inside quotes)."""
    out: dict[str, str] = {}
    for m in re.finditer(r'(\w+)="([^"]*)"', text):
        out[m.group(1)] = m.group(2)
    return out


def _replayable(data: Any) -> bool:
    """Whether a request body can be sent again (none, or bytes; not a stream)."""
    return data is None or isinstance(data, (bytes, bytearray, str))


class RegistryClient:
    def __init__(self, base_url: str, session: aiohttp.ClientSession, *,
                 auth: aiohttp.BasicAuth | None = None,
                 tokens: Mapping[str, str] | None = None,
                 rescope: Rescope | None = None) -> None:
        """*tokens*: bearer tokens to use from the start, by repository (a server's build
        job acting for its requester); *rescope*: where to get a wider one when a request
        is refused for ``insufficient_scope`` (the job's base layers, mounted from the base
        repository, need pull there too)."""
        self.base_url = base_url.rstrip("/")
        self.session = session
        self.auth = auth
        self._tokens: dict[str, str] = dict(tokens or {})
        self._rescope = rescope

    def _url(self, path: str) -> str:
        return urljoin(self.base_url + "/", path.lstrip("/"))

    async def _check(self, resp: aiohttp.ClientResponse, *ok: int) -> None:
        if resp.status in ok:
            return
        body = await resp.read()
        code, message = None, body[:500].decode(errors="replace")
        try:
            err = json.loads(body)["errors"][0]
            code, message = err.get("code"), err.get("message", "")
            if err.get("detail"):
                message += f" ({err['detail']})"
        except (ValueError, KeyError, IndexError, TypeError):
            pass
        raise ClientError(resp.status, code, message)

    async def request(self, method: str, path: str, **kw: Any) -> aiohttp.ClientResponse:
        """One request; on a 401 challenge, get a token (Docker token auth) and retry once;
        on a 401/403 ``insufficient_scope`` challenge (a token held for a narrower scope,
        e.g. pull-only from a first HEAD, then a push), get a token for the scope the
        challenge names and retry once."""
        repo = _repository_of(path)
        headers = dict(kw.pop("headers", None) or {})
        token = self._tokens.get(repo)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        url = self._url(path)
        resp = await self.session.request(method, url, allow_redirects=False,
                                          headers=headers, **kw)
        if resp.status not in (401, 403) or not _replayable(kw.get("data")):
            return resp
        scheme, _, params_text = resp.headers.get("WWW-Authenticate", "").partition(" ")
        params = _parse_challenge(params_text)
        if scheme.lower() == "bearer" and params.get("error") == "insufficient_scope":
            return await self._rescoped(resp, method, url, repo, headers, kw, params)
        if resp.status != 401:
            return resp
        if scheme.lower() == "basic" and self.auth is not None:
            resp.release()
            headers["Authorization"] = self.auth.encode()
        elif scheme.lower() == "bearer":
            new_token = await self._fetch_token(params)
            if new_token is None:
                return resp
            resp.release()
            self._tokens[repo] = new_token
            headers["Authorization"] = f"Bearer {new_token}"
        else:
            return resp
        return await self.session.request(method, url, allow_redirects=False,
                                          headers=headers, **kw)

    async def _rescoped(self, resp: aiohttp.ClientResponse, method: str, url: str, repo: str,
                        headers: dict[str, str], kw: dict[str, Any],
                        params: dict[str, str]) -> aiohttp.ClientResponse:
        """*resp* (a 401/403 ``insufficient_scope``), or the request again, once, with a token
        for the scopes the challenge names (from *rescope* when given, else from the
        challenge's realm with this client's credentials)."""
        scopes = params.get("scope", "").split()
        if self._rescope is not None:
            token = await self._rescope(scopes)
        else:
            token = await self._fetch_token({**params, "scope": " ".join(scopes)})
        if not token or token == self._tokens.get(repo):
            return resp
        resp.release()
        self._tokens[repo] = token
        headers["Authorization"] = f"Bearer {token}"
        return await self.session.request(method, url, allow_redirects=False,
                                          headers=headers, **kw)

    async def _fetch_token(self, params: dict[str, str]) -> str | None:
        realm = params.get("realm")
        if not realm:
            return None
        query = [(k, params[k]) for k in ("service",) if params.get(k)]
        query += [("scope", scope) for scope in params.get("scope", "").split()]
        headers = {"Authorization": self.auth.encode()} if self.auth is not None else {}
        async with self.session.get(realm, params=query, headers=headers) as resp:
            if resp.status != 200:
                return None
            data = await resp.json(content_type=None)
        token = data.get("token") or data.get("access_token")
        return str(token) if token else None

    async def ping(self) -> None:
        async with await self.request("GET", "/v2/") as resp:
            await self._check(resp, 200)

    # -- blobs ---------------------------------------------------------------------------
    async def blob_exists(self, repo: str, digest: str) -> int | None:
        async with await self.request("HEAD", f"/v2/{repo}/blobs/{digest}") as resp:
            if resp.status == 404:
                return None
            await self._check(resp, 200)
            return int(resp.headers["Content-Length"])

    async def push_blob(self, repo: str, data: bytes, digest: str | None = None) -> str:
        """Monolithic push (POST then PUT)."""
        digest = digest or sha256(data)
        async with await self.request("POST", f"/v2/{repo}/blobs/uploads/") as resp:
            await self._check(resp, 202)
            location = resp.headers["Location"]
        async with await self.request(
            "PUT", location, params={"digest": digest}, data=data,
            headers={"Content-Type": "application/octet-stream"}) as resp:
            await self._check(resp, 201)
        return digest

    async def push_blob_chunked(self, repo: str, data: bytes, chunk_size: int) -> str:
        digest = sha256(data)
        async with await self.request("POST", f"/v2/{repo}/blobs/uploads/") as resp:
            await self._check(resp, 202)
            location = resp.headers["Location"]
        for start in range(0, len(data), chunk_size):
            chunk = data[start:start + chunk_size]
            headers = {"Content-Type": "application/octet-stream",
                       "Content-Range": f"{start}-{start + len(chunk) - 1}"}
            async with await self.request("PATCH", location, data=chunk,
                                          headers=headers) as resp:
                await self._check(resp, 202)
                location = resp.headers["Location"]
        async with await self.request("PUT", location, params={"digest": digest}) as resp:
            await self._check(resp, 201)
        return digest

    async def mount_blob(self, repo: str, digest: str, source: str) -> bool:
        async with await self.request("POST", f"/v2/{repo}/blobs/uploads/",
                                      params={"mount": digest, "from": source}) as resp:
            await self._check(resp, 201, 202)
            return resp.status == 201

    async def get_blob(self, repo: str, digest: str) -> bytes:
        async with await self.request("GET", f"/v2/{repo}/blobs/{digest}") as resp:
            await self._check(resp, 200)
            return await resp.read()

    async def stream_blob(self, repo: str, digest: str) -> AsyncIterator[bytes]:
        async with await self.request("GET", f"/v2/{repo}/blobs/{digest}") as resp:
            await self._check(resp, 200)
            async for chunk in resp.content.iter_chunked(1 << 20):
                yield chunk

    async def delete_blob(self, repo: str, digest: str) -> None:
        async with await self.request("DELETE", f"/v2/{repo}/blobs/{digest}") as resp:
            await self._check(resp, 202)

    # -- manifests -----------------------------------------------------------------------
    async def put_manifest(self, repo: str, reference: str, content: bytes,
                           media_type: str) -> str:
        async with await self.request("PUT", f"/v2/{repo}/manifests/{reference}", data=content,
                                      headers={"Content-Type": media_type}) as resp:
            await self._check(resp, 201)
            return resp.headers["Docker-Content-Digest"]

    async def get_manifest(self, repo: str, reference: str) -> Manifest:
        async with await self.request("GET", f"/v2/{repo}/manifests/{reference}",
                                      headers={"Accept": ACCEPT_MANIFESTS}) as resp:
            await self._check(resp, 200)
            content = await resp.read()
            return Manifest(resp.headers["Docker-Content-Digest"],
                            resp.headers["Content-Type"], content)

    async def head_manifest(self, repo: str, reference: str) -> str | None:
        async with await self.request("HEAD", f"/v2/{repo}/manifests/{reference}",
                                      headers={"Accept": ACCEPT_MANIFESTS}) as resp:
            if resp.status == 404:
                return None
            await self._check(resp, 200)
            return resp.headers["Docker-Content-Digest"]

    async def delete_manifest(self, repo: str, reference: str) -> None:
        async with await self.request("DELETE", f"/v2/{repo}/manifests/{reference}") as resp:
            await self._check(resp, 202)

    # -- discovery -----------------------------------------------------------------------
    async def _paged(self, path: str, key: str, page_size: int | None) -> list[str]:
        items: list[str] = []
        params: dict[str, str] = {"n": str(page_size)} if page_size else {}
        url: str | None = path
        while url is not None:
            async with await self.request("GET", url, params=params) as resp:
                await self._check(resp, 200)
                items += (await resp.json())[key] or []
                link = resp.headers.get("Link")
            params = {}
            url = link.split(";")[0].strip().strip("<>") if link else None
        return items

    async def tags(self, repo: str, page_size: int | None = None) -> list[str]:
        return await self._paged(f"/v2/{repo}/tags/list", "tags", page_size)

    async def catalog(self, page_size: int | None = None) -> list[str]:
        return await self._paged("/v2/_catalog", "repositories", page_size)

    async def referrers(self, repo: str, digest: str,
                        artifact_type: str | None = None) -> dict[str, Any]:
        """The referrers index of ``repo@digest``, every page (``Link``) gathered into one."""
        params = {"artifactType": artifact_type} if artifact_type else {}
        url: str | None = f"/v2/{repo}/referrers/{digest}"
        data: dict[str, Any] = {}
        while url is not None:
            async with await self.request("GET", url, params=params) as resp:
                await self._check(resp, 200)
                page: dict[str, Any] = await resp.json(content_type=None)
                link = resp.headers.get("Link")
            if data:
                data["manifests"] = (data.get("manifests") or []) + (page.get("manifests") or [])
            else:
                data = page
            params = {}
            url = link.split(";")[0].strip().strip("<>") if link else None
        return data

    # -- compositions --------------------------------------------------------------------
    async def push_image(self, repo: str, tag: str | None, layers: list[bytes],
                         config: bytes, *, subject: dict[str, Any] | None = None,
                         artifact_type: str | None = None) -> str:
        """Push a single-platform OCI image (or artifact) and return its manifest digest."""
        descriptors = []
        for layer in layers:
            digest = sha256(layer)
            if await self.blob_exists(repo, digest) is None:
                await self.push_blob(repo, layer, digest)
            descriptors.append({"mediaType": mt.OCI_LAYER_GZIP if artifact_type is None
                                else "application/octet-stream",
                                "digest": digest, "size": len(layer)})
        config_digest = sha256(config)
        if await self.blob_exists(repo, config_digest) is None:
            await self.push_blob(repo, config, config_digest)
        manifest: dict[str, Any] = {
            "schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
            "config": {"mediaType": mt.OCI_CONFIG if artifact_type is None else mt.OCI_EMPTY,
                       "digest": config_digest, "size": len(config)},
            "layers": descriptors,
        }
        if artifact_type:
            manifest["artifactType"] = artifact_type
        if subject:
            manifest["subject"] = subject
        body = json.dumps(manifest, separators=(",", ":")).encode()
        return await self.put_manifest(repo, tag or sha256(body), body, mt.OCI_MANIFEST)
