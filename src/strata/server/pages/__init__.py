"""The catalog's web pages: server-rendered HTML (Jinja2), one stylesheet, a small copy script.

:func:`add_pages` installs them (``create_app`` calls it when the release API is on); the
handlers are in :mod:`.handlers`, the templates in ``templates/``."""

from __future__ import annotations

from aiohttp import web

from strata.catalog.views import Catalog
from strata.server.pages.context import PAGES, Pages
from strata.server.pages.render import STATIC, environment

__all__ = ["add_pages"]


def add_pages(app: web.Application, catalog: Catalog) -> None:
    # imported here: the handlers use the search API's key, and server/api/search.py uses
    # this package's visibility rule
    from strata.server.pages import handlers

    app[PAGES] = Pages(catalog, environment)
    app.router.add_static("/-/static", STATIC, append_version=False)
    app.router.add_get("/", handlers.home)
    app.router.add_get("/search", handlers.search)
    app.router.add_get("/-/images/{repository:.+}", handlers.image_any)
    app.router.add_get("/-/namespaces/{ns}", handlers.namespace_any)
    app.router.add_get("/-/releases/{name}", handlers.release)
    app.router.add_get("/-/reviews/{id}", handlers.review)
    app.router.add_get("/-/builds/{id}", handlers.build)
    app.router.add_get("/{ns}", handlers.namespace)
    app.router.add_get("/{ns}/{name}", handlers.image)
