"""The rebuild loop's tables: what each registered build was built from, and the namespaces'
pre-release rebuild setting.

Declared on :data:`strata.meta.schema_base.metadata` (migration ``0012_rebuild_loop`` creates
them). ``candidate_inputs`` has one row per registered build that said what it was built from
(``POST /api/v1/candidates`` with ``source``/``base``/``packages``): its source commit, the
base repository and stream tag its ``FROM`` named and the digest that tag pointed to, and its
OS package list (JSON) with the list's digest, and the digest of the build record referrer the
build pushed (``record``, migration 0021: the provenance names that one); the index on the base
finds every image built on a base stream with one query. ``namespace_rebuilds`` holds ``strata
namespace add|set --rebuild-days-before N`` and the date of the scheduled release whose pre-
release rebuilds were last queued (so each release queues them once)."""

from __future__ import annotations

import sqlalchemy as sa

from strata.meta.schema_base import metadata

candidate_inputs = sa.Table(
    "candidate_inputs",
    metadata,
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
    sa.Column("record_digest", sa.String(200), nullable=True),
    sa.Index("ix_candidate_inputs_base", "base_repository", "base_tag"),
)

namespace_rebuilds = sa.Table(
    "namespace_rebuilds",
    metadata,
    sa.Column("namespace", sa.String(64), sa.ForeignKey("namespaces.name"), primary_key=True),
    sa.Column("days_before", sa.Integer, nullable=True),
    sa.Column("queued_for", sa.String(10), nullable=True),
)
