"""Tag list, catalog and referrers (distribution-spec "Content Discovery")."""

from __future__ import annotations

from urllib.parse import urlencode

from aiohttp import web

from strata.oci import mediatypes as mt
from strata.oci.digest import Digest
from strata.oci.names import RepositoryName
from strata.registry.discovery import Page, parse_page_size
from strata.server.http import json_response
from strata.server.keys import REGISTRY


def _link(path: str, n: int | None, page: Page) -> dict[str, str]:
    if page.next_last is None or n is None:
        return {}
    return {"Link": f'<{path}?{urlencode({"n": n, "last": page.next_last})}>; rel="next"'}


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
    artifact_type = request.query.get("artifactType")
    index = await request.app[REGISTRY].discovery.referrers(
        repo, Digest.parse(digest), artifact_type)
    headers = {"OCI-Filters-Applied": "artifactType"} if artifact_type else {}
    return json_response(index, content_type=mt.OCI_INDEX, headers=headers)
