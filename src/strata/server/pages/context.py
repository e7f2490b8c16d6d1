"""What the page handlers reach through the application (no module-level singletons)."""

from __future__ import annotations

from dataclasses import dataclass

import jinja2
from aiohttp import web

from strata.catalog.views import Catalog


@dataclass(frozen=True)
class Pages:
    catalog: Catalog
    templates: jinja2.Environment


PAGES = web.AppKey("strata.pages", Pages)
