"""Image sources and the review process (issue 14).

``images`` gains ``summary`` (source URL/branch, maintainers and status existed since 0002;
existing rows keep their status, ``active`` for every image registered the old ways).
``review_requests`` and ``review_comments`` hold the reviews of new images (``strata image
submit``, ``strata review …``), ``image_events`` what happened to an image outside its tags:
forced registrations with their reason, approvals, source, status and maintainer changes.

Revision ID: 0010
Revises: 0004 (depends on 0002, which creates ``images``)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0004"
branch_labels = None
depends_on = "0002"


def upgrade() -> None:
    op.add_column("images", sa.Column("summary", sa.Text, nullable=True))
    op.create_table(
        "review_requests",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("repository", sa.String(255), nullable=False),
        sa.Column("namespace", sa.String(64), nullable=False),
        sa.Column("submitter", sa.String(255), nullable=False),
        sa.Column("source_url", sa.String(1024), nullable=False),
        sa.Column("source_branch", sa.String(255), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("checks", sa.Text, nullable=False, server_default="[]"),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("decided_at", sa.Float, nullable=True),
        sa.Column("decided_by", sa.String(255), nullable=True),
    )
    op.create_index("ix_review_requests_repository", "review_requests",
                    ["repository", "status"])
    op.create_table(
        "review_comments",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.Integer, sa.ForeignKey("review_requests.id"),
                  nullable=False),
        sa.Column("author", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("at", sa.Float, nullable=False),
    )
    op.create_index("ix_review_comments_request", "review_comments", ["request_id"])
    op.create_table(
        "image_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("repository", sa.String(255), nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("detail", sa.Text, nullable=True),
        sa.Column("at", sa.Float, nullable=False),
    )
    op.create_index("ix_image_events_repository", "image_events", ["repository", "at"])


def downgrade() -> None:
    op.drop_index("ix_image_events_repository", table_name="image_events")
    op.drop_table("image_events")
    op.drop_index("ix_review_comments_request", table_name="review_comments")
    op.drop_table("review_comments")
    op.drop_index("ix_review_requests_repository", table_name="review_requests")
    op.drop_table("review_requests")
    with op.batch_alter_table("images") as batch:
        batch.drop_column("summary")
