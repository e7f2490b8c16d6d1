"""The catalog pages (HTML): thin handlers over :class:`strata.catalog.views.Catalog`.

=======================================  ==================================================
``/``                                    home: namespaces, latest releases, recent images
``/search?q=``                           search results (:mod:`strata.catalog.search`)
``/{ns}``                                a namespace (or a redirect to a root image's page)
``/{ns}/{name}``                         an image
``/-/images/{repository}``               an image at the root or under a reserved name
``/-/namespaces/{ns}``                   a namespace (any name)
``/-/releases/{name}``                   a release and its notes
``/-/reviews/{id}``, ``/-/builds/{id}``  a review request, a build job
``/-/static/…``                          the stylesheet and the copy script
=======================================  ==================================================

``/{ns}/…`` never answers for a first segment another route owns (:data:`RESERVED`): under
``/v1``, ``/v2``, ``/api``, ``/auth``, ``/keys``, ``/healthz`` and ``/metrics`` an unknown path
keeps its JSON 404; other reserved names get the HTML 404.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from strata.catalog.search import STATUSES, ImageQuery, PackageQuery
from strata.errors import Code, RegistryError
from strata.oci.names import RepositoryName
from strata.release.errors import ReleaseError
from strata.release.model import api_segments
from strata.server.api.builds import BUILDS_API
from strata.server.api.context import reviews_of
from strata.server.api.search import SEARCH
from strata.server.pages.context import PAGES
from strata.server.pages.render import RESERVED
from strata.server.pages.respond import html_errors, not_found_page, page
from strata.server.pages.visibility import anonymous
from strata.server.urls import public_url

JSON_PREFIXES = frozenset({"v1", "v2", "api", "auth", "keys", "healthz", "metrics"})
NVR_ROWS = 20
PACKAGE_ROWS = 200
BUILD_ROWS = 20
LOG_TAIL = 32 << 10
RELEASE_BUILD_ROWS = 300


def _reserved(request: web.Request, segment: str) -> web.Response:
    if segment in JSON_PREFIXES:
        raise web.HTTPNotFound()  # the error middleware's JSON NOT_FOUND, as before
    return not_found_page(request, f"No page at {request.path[:200]}.")


@html_errors
async def home(request: web.Request) -> web.StreamResponse:
    view = await request.app[PAGES].catalog.home(anonymous(request))
    return page(request, "home.html", view=view)


@html_errors
async def namespace(request: web.Request) -> web.StreamResponse:
    name = request.match_info["ns"]
    if name in RESERVED:
        return _reserved(request, name)
    return await _namespace(request, name)


@html_errors
async def namespace_any(request: web.Request) -> web.StreamResponse:
    """``/-/namespaces/{ns}``: also a namespace whose name a route takes."""
    return await _namespace(request, request.match_info["ns"])


async def _namespace(request: web.Request, name: str) -> web.StreamResponse:
    catalog = request.app[PAGES].catalog
    visible = anonymous(request)
    after = request.query.get("after") or None
    if after is not None and not RepositoryName.is_valid(after):
        return not_found_page(request, "No such page of this namespace.")
    try:
        view = await catalog.namespace(name, visible, after=after)
    except ReleaseError as exc:
        if exc.code is not Code.NOT_FOUND or not RepositoryName.is_valid(name):
            raise
        image = await catalog.image_exists(name, visible)
        if not image:
            raise
        raise web.HTTPFound(f"/-/images/{name}") from None
    return page(request, "namespace.html", view=view)


async def _image(request: web.Request, repository: str) -> web.StreamResponse:
    if not RepositoryName.is_valid(repository) or repository.count("/") > 1:
        return not_found_page(request, f"No image {repository[:200]!r}.")
    url = public_url(request)
    view = await request.app[PAGES].catalog.image(
        repository, host=url.netloc, insecure=url.scheme == "http", visible=anonymous(request))
    ns, name = api_segments(repository)
    nvrs = sum(1 for row in view.streams if row.kind == "nvr")
    shown = sum(1 for row in view.streams if row.kind != "nvr")
    return page(request, "image.html", view=view, api_path=f"/api/v1/browse/images/{ns}/{name}",
                nvr_limit=shown + NVR_ROWS, hidden_nvrs=max(0, nvrs - NVR_ROWS),
                package_limit=PACKAGE_ROWS, build_limit=BUILD_ROWS)


@html_errors
async def image(request: web.Request) -> web.StreamResponse:
    ns = request.match_info["ns"]
    if ns in RESERVED:
        return _reserved(request, ns)
    return await _image(request, f"{ns}/{request.match_info['name']}")


@html_errors
async def image_any(request: web.Request) -> web.StreamResponse:
    """``/-/images/{repository}``: root images and those under a reserved namespace name."""
    return await _image(request, request.match_info["repository"])


@html_errors
async def release(request: web.Request) -> web.StreamResponse:
    view = await request.app[PAGES].catalog.release(request.match_info["name"],
                                                    anonymous(request))
    return page(request, "release.html", view=view, build_limit=RELEASE_BUILD_ROWS)


def _number(request: web.Request) -> int | None:
    text = request.match_info["id"]
    return int(text) if text.isdigit() and len(text) <= 12 else None


@html_errors
async def review(request: web.Request) -> web.StreamResponse:
    number = _number(request)
    if number is None:
        return not_found_page(request, "No such review request.")
    data = await reviews_of(request).show(number)
    if not anonymous(request)(str(data["repository"])):
        return not_found_page(request, "No such review request.")
    return page(request, "review.html", review=data)


@html_errors
async def build(request: web.Request) -> web.StreamResponse:
    number = _number(request)
    api = request.app.get(BUILDS_API)
    job = None if api is None or number is None else await api.store.job(number)
    if job is None or not anonymous(request)(job.repository):
        return not_found_page(request, "No such build.")
    offset = max(0, job.log_size - LOG_TAIL)
    got = await api.store.log(job.id, offset) if api is not None else None
    log = got[0] if got else ""
    return page(request, "build.html", job=job, log=log, log_skipped=offset > 0)


SEARCH_FIELDS = ("q", "namespace", "status", "eol", "package")


def _search_url(base: str, form: dict[str, str], cursor: str | None) -> str:
    params = {k: v for k, v in form.items() if v}
    if cursor:
        params["last"] = cursor
    return f"{base}?{urlencode(params)}"


@html_errors
async def search(request: web.Request) -> web.StreamResponse:
    """``/search?q=&namespace=&status=&eol=&package=NAME[=VER]&last=``: the search of
    :mod:`strata.catalog.search`, as an anonymous client may see it."""
    form = {k: request.query.get(k, "")[:300] for k in SEARCH_FIELDS}
    pages = request.app[PAGES]
    visible = anonymous(request)
    namespaces = [ns for ns in await pages.catalog.engine.inventory.namespaces()
                  if visible(ns.name)]
    context: dict[str, Any] = {"form": form, "query": form["q"], "namespaces": namespaces,
                               "statuses": STATUSES, "images": None, "packages": None,
                               "error": None, "next_url": None,
                               "api_url": _search_url("/api/v1/search", form, None)}
    params = {k: v for k, v in form.items() if v and k != "package"}
    if request.query.get("last"):
        params["last"] = request.query["last"]
    try:
        if form["package"]:
            package_page = await request.app[SEARCH].packages(PackageQuery.parse(
                {**params, "name": form["package"]}), visible)
            context["packages"] = package_page.results
            context["api_url"] = _search_url("/api/v1/search/packages",
                                             {**form, "name": form["package"], "package": ""},
                                             None)
            cursor = package_page.next
        elif any(form[k] for k in ("q", "namespace", "status", "eol")):
            image_page = await request.app[SEARCH].images(ImageQuery.parse(params), visible)
            context["images"] = image_page.results
            cursor = image_page.next
        else:
            cursor = None
    except RegistryError as exc:
        if exc.code is not Code.INVALID:
            raise
        return page(request, "search.html", status=400, **{**context, "error": exc.message})
    context["next_url"] = _search_url("/search", form, cursor) if cursor else None
    return page(request, "search.html", **context)
