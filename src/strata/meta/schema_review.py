"""Review tables (issue 14): review requests of new images, their comments and automated
checks, and the image events (forced registrations, status, source and maintainer changes).

Declared on :data:`strata.meta.schema_base.metadata`; migration ``0010`` creates them (and
adds ``images.summary``). ``checks`` is a JSON list of ``{"name", "ok", "detail"}``.
"""

from __future__ import annotations

import sqlalchemy as sa

from strata.meta.schema_base import metadata

review_requests = sa.Table(
    "review_requests",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("repository", sa.String(255), nullable=False),
    sa.Column("namespace", sa.String(64), nullable=False),
    sa.Column("submitter", sa.String(255), nullable=False),
    sa.Column("source_url", sa.String(1024), nullable=False),
    sa.Column("source_branch", sa.String(255), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),  # open | approved | rejected
    sa.Column("checks", sa.Text, nullable=False, server_default="[]"),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("decided_at", sa.Float, nullable=True),
    sa.Column("decided_by", sa.String(255), nullable=True),
    sa.Index("ix_review_requests_repository", "repository", "status"),
)

review_comments = sa.Table(
    "review_comments",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.Integer, sa.ForeignKey("review_requests.id"), nullable=False),
    sa.Column("author", sa.String(255), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # comment | approve | reject
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Index("ix_review_comments_request", "request_id"),
)

image_events = sa.Table(
    "image_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("repository", sa.String(255), nullable=False),
    sa.Column("event", sa.String(32), nullable=False),
    sa.Column("actor", sa.String(255), nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("detail", sa.Text, nullable=True),  # JSON
    sa.Column("at", sa.Float, nullable=False),
    sa.Index("ix_image_events_repository", "repository", "at"),
)
