"""Deprecated import path (issue 13): use :mod:`strata.meta.schema`. Kept until every caller
has moved."""

from __future__ import annotations

from strata.meta.schema import (
    blobs,
    byte_ordered,
    manifest_references,
    manifests,
    metadata,
    repositories,
    repository_blobs,
    tags,
    uploads,
)

__all__ = [
    "blobs", "byte_ordered", "manifest_references", "manifests", "metadata", "repositories",
    "repository_blobs", "tags", "uploads",
]
