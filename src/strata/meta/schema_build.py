"""Build jobs: builds from a registered source and rebuilds, as a work queue with a record.

Declared on :data:`strata.meta.schema_base.metadata` (migration ``0011_build_jobs`` creates
it). A job is ``queued`` until a runner claims it (``running``, ``attempts`` + 1, ``worker``
and ``heartbeat_at`` set), then ``succeeded``, ``failed`` or ``dropped`` (a rebuild whose
result equals what is already there). ``log`` is the build's output, appended while it runs.
The result columns (source commit, base repository/tag/digest, package list digest, image
digest and NVR) let the rebuild loop find every image built on a base with one query.
Times are Unix seconds (floats), as in the other tables.
"""

from __future__ import annotations

import sqlalchemy as sa

from strata.meta.schema_base import metadata

build_jobs = sa.Table(
    "build_jobs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("repository", sa.String(255), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # build | rebuild
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
    sa.Index("ix_build_jobs_state", "state", "id"),
    sa.Index("ix_build_jobs_repository", "repository", "id"),
    sa.Index("ix_build_jobs_base", "base_repository", "base_tag"),
)
