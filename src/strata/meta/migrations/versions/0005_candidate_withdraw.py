"""Withdrawn candidates: who took a pending build out of the next release, when and why.

``strata candidate withdraw`` sets a candidate's status to ``withdrawn`` and records these
three columns on its row (the build's record keeps its whole life: added, withdrawn or
released). Nullable columns: existing rows need nothing.

Revision ID: 0005
Revises: 0004 (depends on 0002, which creates ``candidates``)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = "0002"


def upgrade() -> None:
    op.add_column("candidates", sa.Column("withdrawn_at", sa.Float, nullable=True))
    op.add_column("candidates", sa.Column("withdrawn_by", sa.String(255), nullable=True))
    op.add_column("candidates", sa.Column("withdrawn_reason", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("candidates") as batch:
        batch.drop_column("withdrawn_reason")
        batch.drop_column("withdrawn_by")
        batch.drop_column("withdrawn_at")
