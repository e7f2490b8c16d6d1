"""Build jobs (issue 14): builds from a registered source and rebuilds, queued and recorded.

See :mod:`strata.meta.schema_build` for the columns.

Revision ID: 0011
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "build_jobs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("repository", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("rebuild", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("requested_by", sa.String(255), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("started_at", sa.Float, nullable=True),
        sa.Column("finished_at", sa.Float, nullable=True),
        sa.Column("worker", sa.String(255), nullable=True),
        sa.Column("heartbeat_at", sa.Float, nullable=True),
        sa.Column("source_url", sa.String(1024), nullable=True),
        sa.Column("source_branch", sa.String(255), nullable=True),
        sa.Column("source_commit", sa.String(64), nullable=True),
        sa.Column("base_repository", sa.String(255), nullable=True),
        sa.Column("base_tag", sa.String(128), nullable=True),
        sa.Column("base_digest", sa.String(200), nullable=True),
        sa.Column("packages_digest", sa.String(200), nullable=True),
        sa.Column("result_digest", sa.String(200), nullable=True),
        sa.Column("result_nvr", sa.String(320), nullable=True),
        sa.Column("log", sa.Text, nullable=False),  # "" when queued (insert_job)
        sa.Column("error", sa.Text, nullable=True),
    )
    op.create_index("ix_build_jobs_state", "build_jobs", ["state", "id"])
    op.create_index("ix_build_jobs_repository", "build_jobs", ["repository", "id"])
    op.create_index("ix_build_jobs_base", "build_jobs", ["base_repository", "base_tag"])


def downgrade() -> None:
    op.drop_table("build_jobs")
