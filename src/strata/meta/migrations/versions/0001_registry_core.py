"""Registry core: repositories, blobs, manifests, references, tags, uploads.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "repositories",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(255), nullable=False, unique=True),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "blobs",
        sa.Column("digest", sa.String(200), primary_key=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "repository_blobs",
        sa.Column("repository_id", sa.Integer, sa.ForeignKey("repositories.id"),
                  primary_key=True),
        sa.Column("digest", sa.String(200), primary_key=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("touched_at", sa.Float, nullable=False),
    )
    op.create_index("ix_repository_blobs_digest", "repository_blobs", ["digest"])
    op.create_table(
        "manifests",
        sa.Column("repository_id", sa.Integer, sa.ForeignKey("repositories.id"),
                  primary_key=True),
        sa.Column("digest", sa.String(200), primary_key=True),
        sa.Column("media_type", sa.String(255), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("content", sa.LargeBinary, nullable=False),
        sa.Column("artifact_type", sa.String(255), nullable=True),
        sa.Column("subject", sa.String(200), nullable=True),
        sa.Column("annotations", sa.Text, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_manifests_subject", "manifests", ["repository_id", "subject"])
    op.create_table(
        "manifest_references",
        sa.Column("repository_id", sa.Integer, primary_key=True),
        sa.Column("parent", sa.String(200), primary_key=True),
        sa.Column("child", sa.String(200), primary_key=True),
        sa.Column("is_manifest", sa.Boolean, nullable=False),
        sa.ForeignKeyConstraint(
            ["repository_id", "parent"], ["manifests.repository_id", "manifests.digest"]
        ),
    )
    op.create_index("ix_manifest_references_child", "manifest_references", ["child"])
    op.create_table(
        "tags",
        sa.Column("repository_id", sa.Integer, sa.ForeignKey("repositories.id"),
                  primary_key=True),
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("digest", sa.String(200), nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index("ix_tags_digest", "tags", ["repository_id", "digest"])
    op.create_table(
        "uploads",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("repository", sa.String(255), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    for table in ("uploads", "tags", "manifest_references", "manifests", "repository_blobs",
                  "blobs", "repositories"):
        op.drop_table(table)
