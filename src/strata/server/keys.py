"""Typed application keys (no module-level singletons: values live on the Application)."""

from __future__ import annotations

from aiohttp import web

from strata.registry.service import Registry

REGISTRY = web.AppKey("registry", Registry)
