"""Typed application keys (no module-level singletons: values live on the Application)."""

from __future__ import annotations

from aiohttp import web

from strata.registry.service import Registry

REGISTRY = web.AppKey("registry", Registry)
# The route a request matched (for metrics and logs); a RequestKey, since string keys warn.
ROUTE = web.RequestKey("route", str)
