"""Deprecated import path (issue 13): :mod:`strata.meta.connection`. Removed once the release
side has moved."""

from __future__ import annotations

from strata.meta.connection import create_engine, locked_begin, migrate, sqlite_url

__all__ = ["create_engine", "locked_begin", "migrate", "sqlite_url"]
