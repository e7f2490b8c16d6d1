"""Release engine: namespaces, images, candidates, streams, releases, tag history, webhooks.

Existing tags get one ``created`` event each (actor ``migration``, at the tag's ``updated_at``)
so that the history of every tag starts where the registry's knowledge of it starts.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "namespaces",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("dist_tag", sa.String(64), nullable=False),
        sa.Column("interval_days", sa.Integer, nullable=False, server_default="14"),
        sa.Column("anchor", sa.String(10), nullable=False),
        sa.Column("base_image", sa.String(512), nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "images",
        sa.Column("repository", sa.String(255), primary_key=True),
        sa.Column("namespace", sa.String(64), sa.ForeignKey("namespaces.name"),
                  nullable=False),
        sa.Column("name", sa.String(190), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("maintainers", sa.Text, nullable=False, server_default="[]"),
        sa.Column("source_url", sa.String(1024), nullable=True),
        sa.Column("source_branch", sa.String(255), nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_images_namespace", "images", ["namespace"])
    op.create_table(
        "candidates",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("repository", sa.String(255), sa.ForeignKey("images.repository"),
                  nullable=False),
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
        sa.UniqueConstraint("repository", "digest", name="uq_candidates_digest"),
        sa.UniqueConstraint("repository", "version", "release", name="uq_candidates_nvr"),
    )
    op.create_index("ix_candidates_status", "candidates", ["status", "repository"])
    op.create_table(
        "streams",
        sa.Column("repository", sa.String(255), sa.ForeignKey("images.repository"),
                  primary_key=True),
        sa.Column("version", sa.String(64), primary_key=True),
        sa.Column("eol", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("eol_at", sa.Float, nullable=True),
        sa.Column("eol_by", sa.String(255), nullable=True),
    )
    op.create_table(
        "releases",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("namespace", sa.String(64), sa.ForeignKey("namespaces.name"),
                  nullable=False),
        sa.Column("scheduled_for", sa.String(10), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("published_at", sa.Float, nullable=True),
        sa.Column("actor", sa.String(255), nullable=True),
        sa.Column("advisories", sa.Text, nullable=False, server_default="[]"),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("notes_md", sa.Text, nullable=True),
        sa.Column("notes_json", sa.Text, nullable=True),
    )
    op.create_index("ix_releases_namespace", "releases", ["namespace", "kind", "scheduled_for"])
    op.create_table(
        "release_items",
        sa.Column("release_name", sa.String(128), sa.ForeignKey("releases.name"),
                  primary_key=True),
        sa.Column("repository", sa.String(255), primary_key=True),
        sa.Column("digest", sa.String(200), primary_key=True),
        sa.Column("nvr", sa.String(320), nullable=False),
    )
    events = op.create_table(
        "tag_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("repository", sa.String(255), nullable=False),
        sa.Column("tag", sa.String(128), nullable=False),
        sa.Column("old_digest", sa.String(200), nullable=True),
        sa.Column("new_digest", sa.String(200), nullable=True),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("release_name", sa.String(128), nullable=True),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("at", sa.Float, nullable=False),
    )
    op.create_index("ix_tag_events_tag", "tag_events", ["repository", "tag", "at"])
    op.create_table(
        "webhooks",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("events", sa.Text, nullable=False, server_default="[]"),
        sa.Column("secret", sa.String(255), nullable=True),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "webhook_outbox",
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
    )
    op.create_index("ix_webhook_outbox_due", "webhook_outbox", ["status", "next_attempt_at"])

    repositories = sa.table("repositories", sa.column("id"), sa.column("name"))
    tags = sa.table("tags", sa.column("repository_id"), sa.column("name"),
                    sa.column("digest"), sa.column("updated_at"))
    backfill = (
        sa.select(repositories.c.name, tags.c.name, sa.null(), tags.c.digest,
                  sa.literal("migration"), tags.c.updated_at)
        .select_from(tags.join(repositories, repositories.c.id == tags.c.repository_id))
    )
    op.execute(sa.insert(events).from_select(
        ["repository", "tag", "old_digest", "new_digest", "actor", "at"], backfill))


def downgrade() -> None:
    for table in ("webhook_outbox", "webhooks", "tag_events", "release_items", "releases",
                  "streams", "candidates", "images", "namespaces"):
        op.drop_table(table)
