"""Turning a page's view into an HTML response, and refusals into HTML error pages."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from strata.errors import Code, RegistryError
from strata.release.errors import ReleaseError
from strata.server.keys import ROUTE
from strata.server.pages.context import PAGES
from strata.server.pages.render import render

HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' https: data:; "
                               "style-src 'self'; script-src 'self'; object-src 'none'; "
                               "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-cache",
}

PageHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def page(request: web.Request, template: str, *, status: int = 200,
         **context: Any) -> web.Response:
    pages = request.app[PAGES]
    request[ROUTE] = "page_" + template.removesuffix(".html")  # metrics and the access log
    html = render(pages.templates, template, now=pages.catalog.store.now(), **context)
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8",
                        headers=HEADERS)


def not_found_page(request: web.Request, message: str) -> web.Response:
    return page(request, "error.html", status=404, title="Not found", message=message)


def html_errors(handler: PageHandler) -> PageHandler:
    """A page handler whose "not found" and "invalid" refusals are HTML pages (the JSON
    error bodies are for /api/ and /v2/)."""
    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except (ReleaseError, RegistryError) as exc:
            code = exc.code
            if code in (Code.NOT_FOUND, Code.NAME_UNKNOWN, Code.NAME_INVALID,
                        Code.MANIFEST_UNKNOWN):
                return not_found_page(request, exc.message)
            if code is Code.INVALID:
                return page(request, "error.html", status=400, title="Bad request",
                            message=exc.message)
            raise
    return wrapped
