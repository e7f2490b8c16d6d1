"""Upload sessions record the account that opened them (issue 12).

An authenticated ``POST …/blobs/uploads/`` now creates the session's row at once, with its
account, so every worker and node counts the account's open sessions in one place.

Revision ID: 0009
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("uploads", sa.Column("account", sa.String(255), nullable=True))
    op.create_index("ix_uploads_account", "uploads", ["account"])


def downgrade() -> None:
    op.drop_index("ix_uploads_account", table_name="uploads")
    op.drop_column("uploads", "account")
