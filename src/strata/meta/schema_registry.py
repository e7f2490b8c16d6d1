"""The registry's tables: repositories, blobs and their links, manifests and their references,
tags, upload sessions. One schema for SQLite and PostgreSQL; the Alembic migrations in
``migrations/versions`` create and evolve it (``tests/contract/test_schema_drift.py`` checks they
agree).
"""

from __future__ import annotations

import sqlalchemy as sa

from strata.meta.schema_base import byte_ordered, metadata

repositories = sa.Table(
    "repositories",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", byte_ordered(255), nullable=False, unique=True),
    sa.Column("created_at", sa.Float, nullable=False),
)

blobs = sa.Table(
    "blobs",
    metadata,
    sa.Column("digest", sa.String(200), primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

repository_blobs = sa.Table(
    "repository_blobs",
    metadata,
    sa.Column("repository_id", sa.Integer, sa.ForeignKey("repositories.id"), primary_key=True),
    sa.Column("digest", sa.String(200), primary_key=True),
    sa.Column("created_at", sa.Float, nullable=False),
    # Last time a client asked for this blob here (HEAD/GET/mount): protects it from garbage
    # collection for a grace period while a push that found it goes on.
    sa.Column("touched_at", sa.Float, nullable=False),
    sa.Index("ix_repository_blobs_digest", "digest"),
)

manifests = sa.Table(
    "manifests",
    metadata,
    sa.Column("repository_id", sa.Integer, sa.ForeignKey("repositories.id"), primary_key=True),
    sa.Column("digest", sa.String(200), primary_key=True),
    sa.Column("media_type", sa.String(255), nullable=False),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("content", sa.LargeBinary, nullable=False),
    sa.Column("artifact_type", sa.String(255), nullable=True),
    sa.Column("subject", sa.String(200), nullable=True),
    sa.Column("annotations", sa.Text, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Index("ix_manifests_subject", "repository_id", "subject"),
)

manifest_references = sa.Table(
    "manifest_references",
    metadata,
    sa.Column("repository_id", sa.Integer, primary_key=True),
    sa.Column("parent", sa.String(200), primary_key=True),
    sa.Column("child", sa.String(200), primary_key=True),
    sa.Column("is_manifest", sa.Boolean, nullable=False),
    sa.ForeignKeyConstraint(
        ["repository_id", "parent"], ["manifests.repository_id", "manifests.digest"]
    ),
    sa.Index("ix_manifest_references_child", "child"),
)

tags = sa.Table(
    "tags",
    metadata,
    sa.Column("repository_id", sa.Integer, sa.ForeignKey("repositories.id"), primary_key=True),
    sa.Column("name", byte_ordered(128), primary_key=True),
    sa.Column("digest", sa.String(200), nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Index("ix_tags_digest", "repository_id", "digest"),
)

uploads = sa.Table(
    "uploads",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("repository", sa.String(255), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    # The account that opened the session (None: an open registry); its open sessions are
    # counted against --max-upload-sessions (migration 0009).
    sa.Column("account", sa.String(255), nullable=True),
    # The running sha256 of the recorded bytes (rehashes' serialized state), so any worker or
    # node continues the hash without reading the bytes back (migration 0017).
    sa.Column("hash_state", sa.LargeBinary, nullable=True),
    sa.Index("ix_uploads_account", "account"),
)
