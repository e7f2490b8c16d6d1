"""ApiClient: the release engine's JSON API (``/api/v1``), as the CLI uses it.

One method per route; answers are the decoded JSON. Failures raise
:class:`strata.client.registry.ClientError` with the server's error code and message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import aiohttp

from strata.client.registry import ClientError
from strata.errors import RegistryError
from strata.release.model import api_segments, parse_tag_ref


def _image_path(repository: str) -> str:
    try:
        namespace, name = api_segments(repository)
    except RegistryError as exc:
        raise ClientError(400, "INVALID", exc.message) from None
    return f"/api/v1/images/{quote(namespace, safe='')}/{quote(name, safe='')}"


def _split_tag(reference: str) -> tuple[str, str]:
    try:
        repo, tag = parse_tag_ref(reference)
    except RegistryError as exc:
        raise ClientError(400, "INVALID", exc.message) from None
    return repo.value, tag


#: Page size asked of paginated lists, and the most pages one listing follows.
PAGE_SIZE = 1000
MAX_PAGES = 1000
_NEXT = re.compile(r'<([^>]*)>\s*;\s*rel="?next"?')


class ApiClient:
    def __init__(self, base_url: str, session: aiohttp.ClientSession, *,
                 user: str | None = None, password: str | None = None,
                 token: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session
        self.headers: dict[str, str] = {}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        elif user:
            self.headers["Authorization"] = aiohttp.encode_basic_auth(user, password or "")

    async def _call(self, method: str, path: str, *, params: Mapping[str, str] | None = None,
                    body: Any = None, raw: bool = False) -> Any:
        return (await self._request(method, path, params=params, body=body, raw=raw))[0]

    async def _all(self, path: str, key: str,
                   params: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Every item of a paginated list (``{key: [...]}``), following its ``Link: <...>;
        rel="next"`` pages (at most ``MAX_PAGES``)."""
        items: list[Any] = []
        first: dict[str, Any] = {}
        next_path: str | None = path
        query: Mapping[str, str] | None = {"n": str(PAGE_SIZE), **(params or {})}
        for _ in range(MAX_PAGES):
            if next_path is None:
                break
            data, next_path = await self._request("GET", next_path, params=query)
            query = None  # the next page's path carries the query
            first = first or data
            items.extend(data[key])
        return {**first, key: items}  # the first page's other fields (repository, ...)

    async def _request(self, method: str, path: str, *,
                       params: Mapping[str, str] | None = None, body: Any = None,
                       raw: bool = False) -> tuple[Any, str | None]:
        """The decoded answer and the path of the next page (its ``Link``), if any."""
        data = None if body is None else json.dumps(body).encode()
        headers = dict(self.headers)
        if data is not None:
            headers["Content-Type"] = "application/json"
        async with self.session.request(method, self.base_url + path, params=params or None,
                                        data=data, headers=headers,
                                        allow_redirects=False) as resp:
            content = await resp.read()
            if resp.status >= 400:
                code, message = None, content[:500].decode(errors="replace")
                detail = None
                try:
                    err = json.loads(content)["errors"][0]
                    code, message = err.get("code"), err.get("message", "")
                    detail = err.get("detail")
                except (ValueError, KeyError, IndexError, TypeError, AttributeError):
                    pass
                raise ClientError(resp.status, code, message, detail=detail)
            link = _NEXT.search(resp.headers.get("Link", ""))
            next_path = link.group(1) if link and link.group(1).startswith("/api/v1/") else None
            return (content.decode() if raw else json.loads(content)), next_path

    # -- namespaces and images -------------------------------------------------------------
    async def namespaces(self) -> Any:
        return await self._all("/api/v1/namespaces", "namespaces")

    async def add_namespace(self, name: str, dist_tag: str, *, interval_days: int = 14,
                            anchor: str | None = None, base_image: str | None = None,
                            rebuild_days_before: int | None = None) -> Any:
        return await self._call("POST", "/api/v1/namespaces", body={
            "name": name, "dist_tag": dist_tag, "interval_days": interval_days,
            "anchor": anchor, "base_image": base_image,
            "rebuild_days_before": rebuild_days_before})

    async def update_namespace(self, namespace: str, changes: Mapping[str, Any]) -> Any:
        """PATCH the namespace: ``base_image`` and/or ``rebuild_days_before`` (None clears)."""
        return await self._call("PATCH", f"/api/v1/namespaces/{quote(namespace, safe='')}",
                                body=dict(changes))

    async def set_base_image(self, namespace: str, base_image: str | None) -> Any:
        return await self._call("PATCH", f"/api/v1/namespaces/{quote(namespace, safe='')}",
                                body={"base_image": base_image})

    async def images(self, namespace: str | None = None, *, stale: bool = False) -> Any:
        params = {"namespace": namespace} if namespace else {}
        if stale:
            params["stale"] = "1"
        return await self._all("/api/v1/images", "images", params)

    async def image(self, repository: str) -> Any:
        return await self._call("GET", _image_path(repository))

    async def add_image(self, repository: str, *, maintainers: Sequence[str] = (),
                        source_url: str | None = None, source_branch: str | None = None,
                        status: str | None = None, namespace: str | None = None,
                        summary: str | None = None, reason: str | None = None) -> Any:
        return await self._call("POST", "/api/v1/images", body={
            "repository": repository, "maintainers": list(maintainers),
            "source_url": source_url, "source_branch": source_branch, "status": status,
            "namespace": namespace, "summary": summary, "reason": reason})

    async def set_image(self, repository: str, changes: Mapping[str, str | None]) -> Any:
        return await self._call("PATCH", _image_path(repository), body=dict(changes))

    async def image_maintainers(self, repository: str, *, add: str | None = None,
                                remove: str | None = None) -> Any:
        body = {"add": add} if add is not None else {"remove": remove}
        return await self._call("POST", _image_path(repository) + "/maintainers", body=body)

    async def image_events(self, repository: str) -> Any:
        return await self._call("GET", _image_path(repository) + "/events")

    # -- reviews ---------------------------------------------------------------------------
    async def submit(self, repository: str, git: str, branch: str | None = None) -> Any:
        return await self._call("POST", "/api/v1/reviews", body={
            "repository": repository, "git": git, "branch": branch})

    async def reviews(self, status: str | None = None, namespace: str | None = None) -> Any:
        params = {k: v for k, v in (("status", status), ("namespace", namespace)) if v}
        return await self._all("/api/v1/reviews", "reviews", params)

    async def review(self, request_id: int) -> Any:
        return await self._call("GET", f"/api/v1/reviews/{request_id}")

    async def review_action(self, request_id: int, action: str, comment: str) -> Any:
        return await self._call("POST", f"/api/v1/reviews/{request_id}/{action}",
                                body={"comment": comment})

    # -- candidates ------------------------------------------------------------------------
    async def candidates(self, *, namespace: str | None = None, repository: str | None = None,
                         status: str = "candidate") -> Any:
        params = {"status": status}
        if namespace:
            params["namespace"] = namespace
        if repository:
            params["repository"] = repository
        return await self._all("/api/v1/candidates", "candidates", params)

    async def add_candidate(self, reference: str, *, advisories: Sequence[str] = (),
                            reason: str | None = None,
                            inputs: Mapping[str, Any] | None = None,
                            if_changed: bool = False, force: bool = False) -> Any:
        """Register a build; ``inputs``: ``source``, ``base`` and ``packages`` (what it was
        built from); ``if_changed``: refused (409, ``detail.unchanged``) if it repeats the
        current candidate or release; ``force`` (releng/admin, with ``reason``): although the
        image is not approved."""
        body: dict[str, Any] = {"reference": reference, "advisories": list(advisories),
                                "reason": reason, **(inputs or {}), "if_changed": if_changed}
        if force:
            body["force"] = True
        return await self._call("POST", "/api/v1/candidates", body=body)

    async def search(self, params: Mapping[str, str]) -> Any:
        """``GET /api/v1/search`` (q, namespace, status, eol, n, cursor)."""
        return await self._call("GET", "/api/v1/search", params=params)

    async def search_packages(self, params: Mapping[str, str]) -> Any:
        """``GET /api/v1/search/packages`` (name, version, namespace, q, n, cursor)."""
        return await self._call("GET", "/api/v1/search/packages", params=params)

    async def withdraw_candidate(self, reference: str, *, reason: str) -> Any:
        return await self._call("POST", "/api/v1/candidates/withdraw", body={
            "reference": reference, "reason": reason})

    # -- releases --------------------------------------------------------------------------
    async def plan(self, namespace: str | None = None, count: int = 3) -> Any:
        params = {"count": str(count)}
        if namespace:
            params["namespace"] = namespace
        return await self._call("GET", "/api/v1/plan", params=params)

    async def publish(self, name: str | None = None, namespace: str | None = None) -> Any:
        return await self._call("POST", "/api/v1/releases/publish",
                                body={"name": name, "namespace": namespace})

    async def oob(self, references: Sequence[str], *, advisories: Sequence[str], reason: str,
                  name: str | None = None) -> Any:
        return await self._call("POST", "/api/v1/releases/oob", body={
            "references": list(references), "advisories": list(advisories),
            "reason": reason, "name": name})

    async def releases(self, namespace: str | None = None) -> Any:
        return await self._all("/api/v1/releases", "releases",
                               {"namespace": namespace} if namespace else None)

    async def release(self, name: str) -> Any:
        return await self._call("GET", f"/api/v1/releases/{quote(name, safe='')}")

    async def notes_markdown(self, name: str) -> str:
        text: str = await self._call("GET", f"/api/v1/releases/{quote(name, safe='')}/notes.md",
                                     raw=True)
        return text

    async def rollback(self, reference: str, *, to: str, reason: str) -> Any:
        return await self._call("POST", "/api/v1/rollback", body={
            "reference": reference, "to": to, "reason": reason})

    # -- streams and history ---------------------------------------------------------------
    async def streams(self, repository: str) -> Any:
        return await self._all(_image_path(repository) + "/streams", "streams")

    async def eol(self, reference: str) -> Any:
        repository, version = _split_tag(reference)
        return await self._call(
            "POST", f"{_image_path(repository)}/streams/{quote(version, safe='')}/eol")

    async def history(self, reference: str, at: str | None = None) -> Any:
        repository, tag = _split_tag(reference)
        return await self._all(f"{_image_path(repository)}/tags/{quote(tag, safe='')}/history",
                               "events", {"at": at} if at else None)

    # -- webhooks --------------------------------------------------------------------------
    async def webhooks(self) -> Any:
        return await self._all("/api/v1/webhooks", "webhooks")

    async def add_webhook(self, url: str, *, events: Sequence[str] = (),
                          secret: str | None = None) -> Any:
        return await self._call("POST", "/api/v1/webhooks", body={
            "url": url, "events": list(events), "secret": secret})

    async def deliveries(self) -> Any:
        return await self._call("GET", "/api/v1/webhooks/deliveries")

    # -- builds from the registered source (/api/v1/builds) --------------------------------
    async def start_build(self, repository: str, *, rebuild: bool = False,
                          reason: str | None = None) -> Any:
        return await self._call("POST", "/api/v1/builds", body={
            "repository": repository, "rebuild": rebuild, "reason": reason})

    async def builds(self, *, repository: str | None = None, namespace: str | None = None,
                     state: str | None = None, limit: int | None = None) -> Any:
        params = {k: v for k, v in (("repository", repository), ("namespace", namespace),
                                    ("state", state),
                                    ("limit", None if limit is None else str(limit))) if v}
        return await self._call("GET", "/api/v1/builds", params=params)

    async def build(self, job_id: int) -> Any:
        return await self._call("GET", f"/api/v1/builds/{int(job_id)}")

    async def build_log(self, job_id: int, offset: int = 0) -> Any:
        return await self._call("GET", f"/api/v1/builds/{int(job_id)}/log",
                                params={"offset": str(offset)})

    # -- release keys (issue 16) -----------------------------------------------------------
    async def keys(self, namespace: str) -> Any:
        """The namespace's release keys (current first, then retired) and signed identity."""
        return await self._call("GET", f"/api/v1/namespaces/{quote(namespace, safe='')}/keys")

    async def rotate_key(self, namespace: str) -> Any:
        return await self._call(
            "POST", f"/api/v1/namespaces/{quote(namespace, safe='')}/keys/rotate")
