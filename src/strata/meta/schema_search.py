"""Search tables (issue 15): one document per image for full-text search, the texts each build
brought (labels, help file), and the packages of every build, one row each.

Declared on :data:`strata.meta.schema_base.metadata`; migration ``0013`` creates them, and the
full-text index over ``search_documents`` that each database builds its own way (objects whose
names start with ``search_fts``, outside this metadata):

* SQLite: ``search_fts``, an FTS5 *external-content* table over (name, summary, labels, help)
  with ``content_rowid = id``, kept in step by three triggers on ``search_documents``;
* PostgreSQL: ``search_fts_gin``, a GIN index on the weighted ``tsvector`` expression of
  :func:`strata.meta.search_store.pg_document` (name A, summary B, labels C, help D).

``search_documents`` is rewritten by :func:`strata.meta.search_sql.refresh` inside every write
transaction that changes what it is made of (image rows, builds, streams, build texts).
``search_packages`` rows are written with a build's recorded inputs (``candidate_inputs``),
in the same transaction.
"""

from __future__ import annotations

import sqlalchemy as sa

from strata.meta.schema_base import metadata

search_documents = sa.Table(
    "search_documents",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("repository", sa.String(255), nullable=False),
    sa.Column("namespace", sa.String(64), nullable=False),
    sa.Column("name", sa.String(190), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    # every stream of the image is end-of-life (and it has one)
    sa.Column("eol", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("labels", sa.Text, nullable=False),
    sa.Column("help", sa.Text, nullable=False),
    sa.Column("nvr", sa.String(320), nullable=True),  # its newest live build
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.UniqueConstraint("repository", name="uq_search_documents_repository"),
    sa.Index("ix_search_documents_filter", "namespace", "status"),
)

search_build_texts = sa.Table(
    "search_build_texts",
    metadata,
    sa.Column("repository", sa.String(255), primary_key=True),
    sa.Column("digest", sa.String(200), primary_key=True),
    sa.Column("labels", sa.Text, nullable=False, server_default="{}"),  # JSON object
    sa.Column("help", sa.Text, nullable=True),
)

search_packages = sa.Table(
    "search_packages",
    metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("repository", sa.String(255), primary_key=True),
    sa.Column("digest", sa.String(200), primary_key=True),
    sa.Column("version", sa.String(255), primary_key=True),
    sa.Column("arch", sa.String(64), primary_key=True),
    sa.Index("ix_search_packages_version", "name", "version", "repository", "digest"),
)
