"""Tag list, catalog and referrers (distribution-spec "Content Discovery")."""

from __future__ import annotations

from aiohttp import web

from strata.oci import mediatypes as mt
from strata.oci.digest import Digest
from strata.oci.names import RepositoryName
from strata.registry.discovery import Page, parse_page_size
from strata.server.http import json_response
from strata.server.keys import REGISTRY
from strata.server.urls import next_link


def _link(path: str, n: int | None, page: Page) -> dict[str, str]:
    if page.next_last is None or n is None:
        return {}
    return {"Link": next_link(path, {"n": n, "last": page.next_last})}


async def list_tags(request: web.Request, repo: RepositoryName) -> web.StreamResponse:
    registry = request.app[REGISTRY]
    n = parse_page_size(request.query.get("n"), registry.limits)
    page = await registry.discovery.tags(repo, n, request.query.get("last"))
    return json_response({"name": repo.value, "tags": page.items},
                         headers=_link(f"/v2/{repo}/tags/list", n, page))


async def catalog(request: web.Request) -> web.StreamResponse:
    registry = request.app[REGISTRY]
    n = parse_page_size(request.query.get("n"), registry.limits)
    page = await registry.discovery.repositories(n, request.query.get("last"))
    return json_response({"repositories": page.items},
                         headers=_link("/v2/_catalog", n, page))


async def referrers(request: web.Request, repo: RepositoryName,
                    digest: str) -> web.StreamResponse:
    """One page of referrers; ``Link: <…?n=&last=>; rel="next"`` when there are more (the
    target is relative, as the tags list's is; ``artifactType`` is carried along)."""
    registry = request.app[REGISTRY]
    artifact_type = request.query.get("artifactType")
    n = parse_page_size(request.query.get("n"), registry.limits)
    subject = Digest.parse(digest)
    page = await registry.discovery.referrers(repo, subject, artifact_type, n,
                                              request.query.get("last"))
    headers = {"OCI-Filters-Applied": "artifactType"} if artifact_type else {}
    if page.next_last is not None:
        query = {"n": str(page.size), "last": page.next_last}
        if artifact_type:
            query["artifactType"] = artifact_type
        headers["Link"] = next_link(f"/v2/{repo}/referrers/{subject}", query)
    return json_response(page.index, content_type=mt.OCI_INDEX, headers=headers)
