"""The migrations build exactly the tables the code declares (``strata.meta.schema``), on
SQLite and PostgreSQL: alembic's autogenerate comparison of a migrated database against the
metadata finds nothing to do — no table, column, index, unique or foreign key, type or server
default missing or different on either side."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from strata.meta.schema import metadata


def _sqlite_text_is_text(context: Any, inspected_column: Any, metadata_column: Any,
                         inspected_type: Any, metadata_type: Any) -> bool | None:
    """On SQLite ``VARCHAR(n)`` and ``TEXT`` are one type (TEXT affinity, no length enforced):
    migration 0007 widens ``webhooks.secret`` to ``Text`` on PostgreSQL only, and the
    PostgreSQL half of this test checks lengths. Anything else: alembic's own comparison."""
    if (context.dialect.name == "sqlite" and isinstance(inspected_type, sa.String)
            and isinstance(metadata_type, sa.String)):
        return False
    return None


def _declared(obj: Any, name: str | None, type_: str, reflected: bool,
              compare_to: Any) -> bool:
    """Everything but each database's own full-text index (migration 0013): objects named
    ``search_fts*`` -- SQLite's FTS5 table and its shadow tables, PostgreSQL's tsvector column
    and GIN index -- exist outside the shared metadata by design."""
    return not (name or "").startswith("search_fts")


def differences(engine: sa.Engine) -> list[Any]:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={
            "compare_type": _sqlite_text_is_text, "compare_server_default": True,
            "include_object": _declared})
        return list(compare_metadata(context, metadata))


def test_the_migrations_build_the_declared_tables(engine: sa.Engine) -> None:
    assert differences(engine) == []


def test_a_table_the_migrations_lack_is_found(engine: sa.Engine) -> None:
    """The comparison sees what it should: a column the code declares but no migration adds
    (a copy of the metadata with one more column) is reported."""
    extra = sa.MetaData()
    for table in metadata.sorted_tables:
        table.to_metadata(extra)
    extra.tables["tags"].append_column(sa.Column("note", sa.String(10), nullable=True))
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True,
                                                         "include_object": _declared})
        found = compare_metadata(context, extra)
    assert [d[0] for d in found if isinstance(d, tuple)] == ["add_column"]
