"""Typed application keys (no module-level singletons: values live on the Application)."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from strata.auth.policy import Principal
from strata.registry.service import Registry
from strata.server.blobfile import BlobSends

REGISTRY = web.AppKey("registry", Registry)
# The big blob bodies this worker is sending (copied or sendfile'd: server.blobfile).
BLOB_SENDS = web.AppKey("blob_sends", BlobSends)
# The data dir (local files, spool, SQLite): /healthz reports when its disk runs low.
DATA_DIR = web.AppKey("data_dir", Path)
# The route a request matched (for metrics and logs); a RequestKey, since string keys warn.
ROUTE = web.RequestKey("route", str)
# Who sent the request, set by the auth middleware (``server.auth.request_principal``); here so
# that handlers can read it without importing the middleware (which imports the route table).
PRINCIPAL = web.RequestKey("strata.principal", Principal)
