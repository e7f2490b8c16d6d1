"""What the page handlers reach through the application (no module-level singletons)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from strata.catalog.views import Catalog

if TYPE_CHECKING:
    import jinja2


@dataclass(frozen=True)
class Pages:
    """The catalog, and the templates made by ``make_templates`` when the first page is
    rendered: a worker that serves no page never imports Jinja2 (issue #18, peak PSS)."""

    catalog: Catalog
    make_templates: Callable[[], jinja2.Environment]

    @functools.cached_property
    def templates(self) -> jinja2.Environment:
        return self.make_templates()


PAGES = web.AppKey("strata.pages", Pages)
