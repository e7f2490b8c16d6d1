"""Deprecated import path (issue 13): tables from :mod:`strata.meta.schema`, the tag write from
:mod:`strata.meta.tagwrite`. Kept until the release side has moved."""

from __future__ import annotations

from strata.meta.schema import (
    candidates,
    images,
    metadata,
    namespaces,
    release_items,
    releases,
    streams,
    tag_events,
    webhook_outbox,
    webhooks,
)
from strata.meta.tagwrite import (
    REGISTRY_ACTOR,
    holders,
    is_managed,
    record_tag_event,
    write_tag,
)

__all__ = [
    "REGISTRY_ACTOR", "candidates", "holders", "images", "is_managed", "metadata", "namespaces",
    "record_tag_event", "release_items", "releases", "streams", "tag_events", "webhook_outbox",
    "webhooks", "write_tag",
]
