"""Tag and repository names in byte order on PostgreSQL (COLLATE "C").

The tag list and the catalog are paged in byte order. SQLite compares text bytewise already
(its default BINARY collation): nothing changes there. On PostgreSQL the columns had the
database's default collation, usually a linguistic one, which listed tags like ``_x, a, A, B``
instead of ``A, B, _x, a`` and made ``last``-paging skip or repeat names. Changing the column
collation rebuilds the indexes on it (the primary key of ``tags``, the unique index of
``repositories``), so ``ORDER BY name`` and ``name > :last`` keep using them.

Revision ID: 0004
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0001"
branch_labels = None
depends_on = None

_COLUMNS = (("repositories", "name", 255), ("tags", "name", 128))


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column, length in _COLUMNS:
        op.alter_column(table, column, existing_type=sa.String(length), existing_nullable=False,
                        type_=sa.String(length, collation="C"))


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column, length in _COLUMNS:
        op.alter_column(table, column, existing_type=sa.String(length, collation="C"),
                        existing_nullable=False, type_=sa.String(length))
