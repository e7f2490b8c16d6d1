"""Search (issue 15): one document per image, the texts of each build, the package rows of
every build, and each database's full-text index over the documents.

See :mod:`strata.meta.schema_search`. Objects outside the shared metadata are named
``search_fts*`` (the schema-drift test leaves them alone): on SQLite the FTS5 external-content
table ``search_fts`` and its three triggers; on PostgreSQL the narrow table
``search_fts_vectors`` (per document: what a search filters and orders by, and the weighted
``tsvector``, written by the ``search_fts_document`` trigger) and its GIN index
``search_fts_gin``. Existing images and recorded package lists are indexed here; build texts
(labels, help) are known from the next registration on.

Revision ID: 0013
Revises: 0012 (candidate_inputs); depends on 0010 (images with summary)
"""

from __future__ import annotations

import json
import time

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = "0010"

SQLITE_FTS = [
    "CREATE VIRTUAL TABLE search_fts USING fts5(name, summary, labels, help, "
    "content='search_documents', content_rowid='id', "
    "tokenize='unicode61 remove_diacritics 2', prefix='2 3')",
    "CREATE TRIGGER search_fts_ai AFTER INSERT ON search_documents BEGIN "
    "INSERT INTO search_fts(rowid, name, summary, labels, help) "
    "VALUES (new.id, new.repository, new.summary, new.labels, new.help); END",
    "CREATE TRIGGER search_fts_ad AFTER DELETE ON search_documents BEGIN "
    "INSERT INTO search_fts(search_fts, rowid, name, summary, labels, help) "
    "VALUES ('delete', old.id, old.repository, old.summary, old.labels, old.help); END",
    "CREATE TRIGGER search_fts_au AFTER UPDATE ON search_documents BEGIN "
    "INSERT INTO search_fts(search_fts, rowid, name, summary, labels, help) "
    "VALUES ('delete', old.id, old.repository, old.summary, old.labels, old.help); "
    "INSERT INTO search_fts(rowid, name, summary, labels, help) "
    "VALUES (new.id, new.repository, new.summary, new.labels, new.help); END",
]


def _pg_part(column: str, weight: str) -> str:
    return (f"setweight(to_tsvector('simple'::regconfig, regexp_replace(NEW.{column}, "
            f"'[^[:alnum:]]+', ' ', 'g')), '{weight}')")


POSTGRES_FTS = [
    # narrow rows (what the search filters, orders and ranks by) so a search reads little
    "CREATE TABLE search_fts_vectors (id integer PRIMARY KEY REFERENCES search_documents(id) "
    "ON DELETE CASCADE, repository varchar(255) NOT NULL, name varchar(190) NOT NULL, "
    "namespace varchar(64) NOT NULL, status varchar(16) NOT NULL, eol boolean NOT NULL, "
    "vector tsvector NOT NULL)",
    "CREATE FUNCTION search_fts_document() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "INSERT INTO search_fts_vectors (id, repository, name, namespace, status, eol, vector) "
    "VALUES (NEW.id, NEW.repository, NEW.name, NEW.namespace, NEW.status, NEW.eol, "
    + " || ".join([_pg_part("repository", "A"), _pg_part("summary", "B"),
                   _pg_part("labels", "C"), _pg_part("help", "D")])
    + ") ON CONFLICT (id) DO UPDATE SET repository = EXCLUDED.repository, "
    "name = EXCLUDED.name, namespace = EXCLUDED.namespace, status = EXCLUDED.status, "
    "eol = EXCLUDED.eol, vector = EXCLUDED.vector; RETURN NULL; END $$",
    "CREATE TRIGGER search_fts_document AFTER INSERT OR UPDATE ON search_documents "
    "FOR EACH ROW EXECUTE FUNCTION search_fts_document()",
    "CREATE INDEX search_fts_gin ON search_fts_vectors USING gin (vector)",
]


def upgrade() -> None:
    op.create_table(
        "search_documents",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("repository", sa.String(255), nullable=False),
        sa.Column("namespace", sa.String(64), nullable=False),
        sa.Column("name", sa.String(190), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("eol", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("labels", sa.Text, nullable=False),
        sa.Column("help", sa.Text, nullable=False),
        sa.Column("nvr", sa.String(320), nullable=True),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.UniqueConstraint("repository", name="uq_search_documents_repository"),
    )
    op.create_index("ix_search_documents_filter", "search_documents", ["namespace", "status"])
    op.create_table(
        "search_build_texts",
        sa.Column("repository", sa.String(255), primary_key=True),
        sa.Column("digest", sa.String(200), primary_key=True),
        sa.Column("labels", sa.Text, nullable=False, server_default="{}"),
        sa.Column("help", sa.Text, nullable=True),
    )
    op.create_table(
        "search_packages",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("repository", sa.String(255), primary_key=True),
        sa.Column("digest", sa.String(200), primary_key=True),
        sa.Column("version", sa.String(255), primary_key=True),
        sa.Column("arch", sa.String(64), primary_key=True),
    )
    op.create_index("ix_search_packages_version", "search_packages",
                    ["name", "version", "repository", "digest"])
    bind = op.get_bind()
    for statement in SQLITE_FTS if bind.dialect.name == "sqlite" else POSTGRES_FTS:
        op.execute(statement)
    _index_existing(bind)


def _index_existing(bind: sa.Connection) -> None:
    """Documents of the images there are (summary, status, EOL); package rows of the package
    lists recorded so far (of builds not withdrawn)."""
    now = time.time()
    images = bind.execute(sa.text(
        "SELECT repository, namespace, name, status, summary FROM images")).fetchall()
    for row in images:
        streams = bind.execute(sa.text(
            "SELECT eol FROM streams WHERE repository = :r"), {"r": row.repository}).fetchall()
        eol = bool(streams) and all(bool(s.eol) for s in streams)
        bind.execute(sa.text(
            "INSERT INTO search_documents (repository, namespace, name, status, eol, summary, "
            "labels, help, updated_at) VALUES (:r, :ns, :n, :s, :e, :sum, '', '', :at)"),
            {"r": row.repository, "ns": row.namespace, "n": row.name, "s": row.status,
             "e": eol, "sum": row.summary or "", "at": now})
    for row in bind.execute(sa.text(
            "SELECT i.repository, i.digest, i.packages FROM candidate_inputs i "
            "JOIN candidates c ON c.repository = i.repository AND c.digest = i.digest "
            "WHERE c.status <> 'withdrawn'")).fetchall():
        keys = {(str(p[0])[:255], str(p[1])[:255], str(p[2])[:64])
                for p in json.loads(row.packages or "[]")}
        if keys:
            bind.execute(sa.text(
                "INSERT INTO search_packages (name, repository, digest, version, arch) "
                "VALUES (:n, :r, :d, :v, :a)"),
                [{"n": n, "r": row.repository, "d": row.digest, "v": v, "a": a}
                 for n, v, a in sorted(keys)])


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for trigger in ("search_fts_ai", "search_fts_ad", "search_fts_au"):
            op.execute(f"DROP TRIGGER {trigger}")
        op.execute("DROP TABLE search_fts")
    else:
        op.execute("DROP TRIGGER search_fts_document ON search_documents")
        op.execute("DROP FUNCTION search_fts_document()")
        op.execute("DROP TABLE search_fts_vectors")
    op.drop_index("ix_search_packages_version", table_name="search_packages")
    op.drop_table("search_packages")
    op.drop_table("search_build_texts")
    op.drop_index("ix_search_documents_filter", table_name="search_documents")
    op.drop_table("search_documents")
