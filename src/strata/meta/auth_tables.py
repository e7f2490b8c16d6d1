"""Deprecated import path (issue 13): use :mod:`strata.meta.schema`."""

from __future__ import annotations

from strata.meta.schema import auth_accounts, auth_role_grants, metadata

__all__ = [
    "auth_accounts", "auth_role_grants", "metadata",
]
