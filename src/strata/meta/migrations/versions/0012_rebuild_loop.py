"""The rebuild loop (issue 14): what each build was built from, and pre-release rebuilds.

``candidate_inputs``: per registered build (repository, digest), its source URL and commit,
its base (repository, stream tag, digest), its OS package list (JSON) and that list's digest.
``namespace_rebuilds``: a namespace's ``--rebuild-days-before`` and the scheduled date whose
rebuilds were last queued. New tables only: existing builds simply have no inputs (they are
never stale, and never dropped as unchanged).

Revision ID: 0012
Revises: 0004 (depends on 0002, which creates ``namespaces``)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0004"
branch_labels = None
depends_on = "0002"


def upgrade() -> None:
    op.create_table(
        "candidate_inputs",
        sa.Column("repository", sa.String(255), primary_key=True),
        sa.Column("digest", sa.String(200), primary_key=True),
        sa.Column("source_url", sa.String(1024), nullable=True),
        sa.Column("source_commit", sa.String(64), nullable=True),
        sa.Column("base_repository", sa.String(255), nullable=True),
        sa.Column("base_tag", sa.String(128), nullable=True),
        sa.Column("base_digest", sa.String(200), nullable=True),
        sa.Column("packages_digest", sa.String(200), nullable=True),
        sa.Column("packages", sa.Text, nullable=False, server_default="[]"),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_candidate_inputs_base", "candidate_inputs",
                    ["base_repository", "base_tag"])
    op.create_table(
        "namespace_rebuilds",
        sa.Column("namespace", sa.String(64), sa.ForeignKey("namespaces.name"),
                  primary_key=True),
        sa.Column("days_before", sa.Integer, nullable=True),
        sa.Column("queued_for", sa.String(10), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("namespace_rebuilds")
    op.drop_index("ix_candidate_inputs_base", table_name="candidate_inputs")
    op.drop_table("candidate_inputs")
