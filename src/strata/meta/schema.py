"""Every table of strata, on one ``metadata``: the shape the code queries.

The tables are declared per domain — :mod:`strata.meta.schema_registry`,
:mod:`strata.meta.schema_release`, :mod:`strata.meta.schema_auth` — on
:data:`strata.meta.schema_base.metadata`; importing this module imports them all, so
``metadata`` here is complete (the Alembic environment and the schema-drift test use it). A
new domain (catalog, reviews, builds) adds a ``schema_<domain>.py`` and one import below.
"""

from __future__ import annotations

from strata.meta.schema_auth import (
    auth_accounts,
    auth_login_buckets,
    auth_role_grants,
    auth_signing_keys,
)
from strata.meta.schema_base import byte_ordered, metadata
from strata.meta.schema_build import build_jobs
from strata.meta.schema_rebuild import candidate_inputs, namespace_rebuilds
from strata.meta.schema_registry import (
    blobs,
    manifest_references,
    manifests,
    repositories,
    repository_blobs,
    tags,
    uploads,
)
from strata.meta.schema_release import (
    candidates,
    images,
    namespaces,
    release_items,
    releases,
    streams,
    tag_events,
    webhook_outbox,
    webhooks,
)
from strata.meta.schema_review import (
    image_events,
    review_comments,
    review_requests,
)
from strata.meta.schema_search import (
    search_build_texts,
    search_documents,
    search_packages,
)
from strata.meta.schema_trust import signing_keys

__all__ = [
    "auth_accounts", "auth_login_buckets", "auth_role_grants", "auth_signing_keys", "blobs",
    "build_jobs", "byte_ordered",
    "candidate_inputs", "candidates", "image_events", "images", "manifest_references",
    "manifests", "metadata", "namespace_rebuilds", "namespaces", "release_items", "releases",
    "repositories", "repository_blobs", "review_comments", "review_requests",
    "search_build_texts", "search_documents", "search_packages", "signing_keys", "streams",
    "tag_events", "tags", "uploads", "webhook_outbox", "webhooks",
]
