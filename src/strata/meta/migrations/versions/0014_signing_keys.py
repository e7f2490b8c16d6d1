"""Release keys (issue 16): ``signing_keys``, one row per key of a namespace (current or
retired), the private half encrypted with the signing passphrase.

Revision ID: 0014
Revises: 0004 (depends on 0002, which creates ``namespaces``)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0004"
branch_labels = None
depends_on = "0002"


def upgrade() -> None:
    op.create_table(
        "signing_keys",
        sa.Column("key_id", sa.String(64), primary_key=True),
        sa.Column("namespace", sa.String(64), sa.ForeignKey("namespaces.name"),
                  nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("public_pem", sa.Text, nullable=False),
        sa.Column("private_pem", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("retired_at", sa.Float, nullable=True),
    )
    op.create_index("ix_signing_keys_namespace", "signing_keys", ["namespace", "status"])


def downgrade() -> None:
    op.drop_index("ix_signing_keys_namespace", table_name="signing_keys")
    op.drop_table("signing_keys")
