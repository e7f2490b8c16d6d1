"""Release tables: namespaces, images, candidates, streams, releases, tag history, webhooks and
their delivery outbox.

Declared on :data:`strata.meta.schema_base.metadata` (migration ``0002_release`` creates them).
Dates are ISO strings (``YYYY-MM-DD``) and times are Unix seconds (floats), as in the registry
tables, so SQLite and PostgreSQL behave alike. JSON columns are ``Text``. ``tag_events`` is
written only through :mod:`strata.meta.tagwrite`.
"""

from __future__ import annotations

import sqlalchemy as sa

from strata.meta.schema_base import metadata

namespaces = sa.Table(
    "namespaces",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("dist_tag", sa.String(64), nullable=False),
    sa.Column("interval_days", sa.Integer, nullable=False, server_default="14"),
    sa.Column("anchor", sa.String(10), nullable=False),
    sa.Column("base_image", sa.String(512), nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
)

images = sa.Table(
    "images",
    metadata,
    sa.Column("repository", sa.String(255), primary_key=True),
    sa.Column("namespace", sa.String(64), sa.ForeignKey("namespaces.name"), nullable=False),
    sa.Column("name", sa.String(190), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("maintainers", sa.Text, nullable=False, server_default="[]"),
    sa.Column("source_url", sa.String(1024), nullable=True),
    sa.Column("source_branch", sa.String(255), nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("summary", sa.Text, nullable=True),  # migration 0010
    sa.Index("ix_images_namespace", "namespace"),
)

candidates = sa.Table(
    "candidates",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("repository", sa.String(255), sa.ForeignKey("images.repository"), nullable=False),
    sa.Column("digest", sa.String(200), nullable=False),
    sa.Column("name", sa.String(190), nullable=False),
    sa.Column("version", sa.String(64), nullable=False),
    sa.Column("release", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("advisories", sa.Text, nullable=False, server_default="[]"),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("release_name", sa.String(128), nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("created_by", sa.String(255), nullable=False),
    sa.Column("withdrawn_at", sa.Float, nullable=True),  # migration 0005
    sa.Column("withdrawn_by", sa.String(255), nullable=True),
    sa.Column("withdrawn_reason", sa.Text, nullable=True),
    sa.UniqueConstraint("repository", "digest", name="uq_candidates_digest"),
    sa.UniqueConstraint("repository", "version", "release", name="uq_candidates_nvr"),
    sa.Index("ix_candidates_status", "status", "repository"),
)

streams = sa.Table(
    "streams",
    metadata,
    sa.Column("repository", sa.String(255), sa.ForeignKey("images.repository"),
              primary_key=True),
    sa.Column("version", sa.String(64), primary_key=True),
    sa.Column("eol", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("eol_at", sa.Float, nullable=True),
    sa.Column("eol_by", sa.String(255), nullable=True),
)

releases = sa.Table(
    "releases",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("namespace", sa.String(64), sa.ForeignKey("namespaces.name"), nullable=False),
    sa.Column("scheduled_for", sa.String(10), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("published_at", sa.Float, nullable=True),
    sa.Column("actor", sa.String(255), nullable=True),
    sa.Column("advisories", sa.Text, nullable=False, server_default="[]"),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("notes_md", sa.Text, nullable=True),
    sa.Column("notes_json", sa.Text, nullable=True),
    sa.Index("ix_releases_namespace", "namespace", "kind", "scheduled_for"),
)

release_items = sa.Table(
    "release_items",
    metadata,
    sa.Column("release_name", sa.String(128), sa.ForeignKey("releases.name"), primary_key=True),
    sa.Column("repository", sa.String(255), primary_key=True),
    sa.Column("digest", sa.String(200), primary_key=True),
    sa.Column("nvr", sa.String(320), nullable=False),
)

tag_events = sa.Table(
    "tag_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("repository", sa.String(255), nullable=False),
    sa.Column("tag", sa.String(128), nullable=False),
    sa.Column("old_digest", sa.String(200), nullable=True),
    sa.Column("new_digest", sa.String(200), nullable=True),
    sa.Column("actor", sa.String(255), nullable=False),
    sa.Column("release_name", sa.String(128), nullable=True),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("at", sa.Float, nullable=False),
    sa.Index("ix_tag_events_tag", "repository", "tag", "at"),
)

webhooks = sa.Table(
    "webhooks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("url", sa.String(2048), nullable=False),  # redacted: what everyone is shown
    sa.Column("events", sa.Text, nullable=False, server_default="[]"),
    sa.Column("secret", sa.Text, nullable=True),  # sealed (SecretBox); Text since 0007
    sa.Column("url_sealed", sa.Text, nullable=True),  # the whole URL, sealed, if redacted (0007)
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("created_at", sa.Float, nullable=False),
)

webhook_outbox = sa.Table(
    "webhook_outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("webhook_id", sa.Integer, sa.ForeignKey("webhooks.id"), nullable=False),
    sa.Column("event", sa.String(64), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", sa.Float, nullable=False),
    sa.Column("claimed_until", sa.Float, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("delivered_at", sa.Float, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Index("ix_webhook_outbox_due", "status", "next_attempt_at"),
)
