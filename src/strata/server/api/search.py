"""Search routes (issue 15), thin over :class:`strata.catalog.search.Search`.

* ``GET /api/v1/search?q=&namespace=&status=&eol=&n=&last=``: images whose name, summary,
  labels or help file have every word of ``q`` (prefixes), name matches first; without ``q``
  every image (by repository) within the filters. ``{"query", "results": [{repository,
  namespace, name, status, eol, summary, nvr}], "next"}``; a next page's cursor is also the
  ``Link: <...?last=...>; rel="next"`` header (``last``: that opaque cursor).
* ``GET /api/v1/search/packages?name=NAME[=VER]&version=&namespace=&q=&n=&last=``: builds
  whose recorded package list has the package, with the release each was in: ``{"query",
  "results": [{repository, digest, nvr, status, release, package: {name, version, arch}}],
  "next"}``.
* ``GET /v1/search?q=&n=``: the Docker registry v1 search that ``podman search HOST/TERM``
  asks first: ``{"num_results", "query", "results": [{"name": "ns/name", "description",
  "star_count", "is_official", "is_automated"}]}`` (``n`` above 100 is served as 100).

Only repositories the asker may pull are answered (``/v1/search``: an anonymous client's, as
podman sends no credentials there), the rule of the catalog pages
(:mod:`strata.server.pages.visibility`). Bad input is 400 ``INVALID`` naming what was wrong
(:mod:`strata.catalog.search`).
"""

from __future__ import annotations

from urllib.parse import urlencode

from aiohttp import web

from strata.catalog.search import (
    DEFAULT_N,
    MAX_N,
    MAX_QUERY,
    MAX_WORDS,
    STATUSES,
    ImageQuery,
    PackageQuery,
    Search,
    Visible,
    invalid,
)
from strata.server.api.auth import Need, authorize
from strata.server.api.schemas import BOOL, STR, Schema, obj
from strata.server.api.spec import Operation, Param
from strata.server.auth import AUTH
from strata.server.http import json_response
from strata.server.pages.visibility import anonymous, for_principal

SEARCH = web.AppKey("search", Search)


def _visible(request: web.Request, *, as_anonymous: bool = False) -> Visible | None:
    """Who may see what: the asker's pull rights (None: everyone sees everything)."""
    if request.app.get(AUTH) is None:
        return None
    return anonymous(request) if as_anonymous else for_principal(request)


def _link(request: web.Request, cursor: str | None) -> dict[str, str]:
    if cursor is None:
        return {}
    query = {k: v for k, v in request.query.items() if k != "last"}
    return {"Link": f'<{request.path}?{urlencode({**query, "last": cursor})}>; rel="next"'}


async def search_images(request: web.Request) -> web.Response:
    authorize(request, Need.READER)
    page = await request.app[SEARCH].images(ImageQuery.parse(request.query),
                                            _visible(request))
    return json_response(page.to_json(), headers=_link(request, page.next))


async def search_packages(request: web.Request) -> web.Response:
    authorize(request, Need.READER)
    page = await request.app[SEARCH].packages(PackageQuery.parse(request.query),
                                              _visible(request))
    return json_response(page.to_json(), headers=_link(request, page.next))


async def docker_v1_search(request: web.Request) -> web.Response:
    n = request.query.get("n") or "25"
    if not (n.isascii() and n.isdigit()) or len(n) > 6 or int(n) < 1:
        raise invalid("n must be a positive integer", {"n": n[:40]})
    text = request.query.get("q", "")
    page = await request.app[SEARCH].images(ImageQuery.parse(
        {"q": text, "n": str(min(int(n), MAX_N))}), _visible(request, as_anonymous=True))
    results = [{"name": hit.repository, "description": hit.summary, "star_count": 0,
                "is_official": False, "is_automated": False} for hit in page.results]
    return json_response({"num_results": len(results), "query": text, "results": results})


# -- declarations (/api/v1/openapi.json) -------------------------------------------------------
_N = Param("n", {"type": "integer", "minimum": 1, "maximum": MAX_N, "default": DEFAULT_N},
           "page size")
_LAST = Param("last", {"type": "string", "maxLength": 1024},
              "the cursor of the next page (``next`` of the previous answer)")
# Lengths are the catalog's to check (its message says what is wrong); the schemas name them.
_Q = Param("q", {"type": "string"},
           f"words (letters and digits; at most {MAX_WORDS} of at most 64, {MAX_QUERY} "
           "characters in all), each a prefix, all must match")
_NS = Param("namespace", {"type": "string"}, "only this namespace")
_OPT_STR = {"type": ["string", "null"]}
_IMAGE_HIT = obj({"repository": STR, "namespace": STR, "name": STR, "status": STR,
                  "eol": BOOL, "summary": STR, "nvr": _OPT_STR})
_PACKAGE_HIT = obj({"repository": STR, "digest": STR, "nvr": STR, "status": STR,
                    "release": _OPT_STR,
                    "package": obj({"name": STR, "version": STR, "arch": STR})})


def _page(item: Schema) -> Schema:
    return obj({"query": {"type": "object"}, "results": {"type": "array", "items": item},
                "next": _OPT_STR})


OPERATIONS = (
    Operation("GET", "/api/v1/search", search_images,
              "search images by name, summary, labels and help file (name matches first)",
              "search", query=(
                  _Q, _NS,
                  Param("status", {"enum": list(STATUSES)}, "only images with this status"),
                  Param("eol", {"type": "boolean"},
                        "only images whose every stream ended (true) or not (false)"),
                  _N, _LAST),
              response=_page(_IMAGE_HIT)),
    Operation("GET", "/api/v1/search/packages", search_packages,
              "builds whose recorded package list has a package, with their release",
              "search", query=(
                  Param("name", {"type": "string"}, "the package: NAME or NAME=VERSION "
                        "(at most 255 characters each)", required=True),
                  Param("version", {"type": "string"},
                        "exactly, or as VERSION-release (at most 255 characters)"),
                  _NS, Param("q", _Q.schema, "only images these words find"), _N, _LAST),
              response=_page(_PACKAGE_HIT)),
)
