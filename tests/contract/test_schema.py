"""The schema the migrations build, and the cluster the postgres half runs on."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic.script import ScriptDirectory

from strata.meta.connection import migrate
from support.postgres import PostgresCluster

from .helpers import TRICKY_TAGS

MIGRATIONS = Path(__file__).resolve().parents[2] / "src" / "strata" / "meta" / "migrations"


def revisions() -> set[str]:
    return {r.revision for r in ScriptDirectory(str(MIGRATIONS)).walk_revisions()}


def applied_revisions(heads: set[str]) -> set[str]:
    """The revisions the database's version table stands for: its heads and everything they
    revise or depend on (a head that ``depends_on`` another branch stands for it too)."""
    script = ScriptDirectory(str(MIGRATIONS))
    return {r.revision for r in script.iterate_revisions(sorted(heads), "base")}


def test_every_migration_head_is_applied_and_migrate_is_idempotent(engine: sa.Engine) -> None:
    migrate(engine)  # again, on a migrated database: nothing to do, no error
    with engine.connect() as conn:
        applied = {r[0] for r in conn.execute(sa.text("SELECT version_num FROM alembic_version"))}
    assert applied_revisions(applied) == revisions()
    assert {"0004", "0007"} <= applied_revisions(applied)


def test_names_sort_and_compare_in_byte_order_in_sql(engine: sa.Engine) -> None:
    """The columns themselves (not the queries) carry the order, on both databases."""
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO repositories (name, created_at) VALUES ('r', 0)"))
        for name in TRICKY_TAGS:
            conn.execute(sa.text("INSERT INTO repositories (name, created_at) VALUES (:n, 0)"),
                         {"n": name})
            conn.execute(sa.text("INSERT INTO tags (repository_id, name, digest, updated_at) "
                                 "SELECT id, :n, 'd', 0 FROM repositories WHERE name = 'r'"),
                         {"n": name})
        tags = [r[0] for r in conn.execute(sa.text("SELECT name FROM tags ORDER BY name"))]
        repos = [r[0] for r in conn.execute(sa.text(
            "SELECT name FROM repositories WHERE name > 'B' ORDER BY name"))]
    assert tags == sorted(TRICKY_TAGS)
    assert repos == sorted(n for n in [*TRICKY_TAGS, "r"] if n > "B")


def test_the_cluster_sorts_linguistically_by_default(postgres: PostgresCluster) -> None:
    """Without this the ordering tests above would pass on PostgreSQL by luck: the harness's
    cluster must sort like a typical production one (ICU en-US), not bytewise."""
    with postgres.connect() as conn:
        rows = conn.execute(
            "SELECT x FROM unnest(%s::text[]) AS x ORDER BY x", (TRICKY_TAGS,)).fetchall()
    assert [r[0] for r in rows] != sorted(TRICKY_TAGS)
    assert [r[0] for r in rows][:2] == ["_x", "a"]
