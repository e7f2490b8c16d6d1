"""What the nodes of one database share for authentication (issue 17): the token-signing keys
(sealed with the server's secret key) and the failed-login budgets.

Until now each node kept ``DATA/auth/signing-key.pem`` and a mapped file of login buckets;
``strata serve`` imports the key file into ``auth_signing_keys`` at start (tokens it signed
stay valid) and removes it. New tables only.

Revision ID: 0015
Revises: 0004 (depends on 0003, the auth tables)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0004"
branch_labels = None
depends_on = "0003"


def upgrade() -> None:
    op.create_table(
        "auth_signing_keys",
        sa.Column("kid", sa.String(64), primary_key=True),
        sa.Column("sealed_key", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("retired_at", sa.Float, nullable=True),
        sa.Column("active", sa.Integer, nullable=True, unique=True),
    )
    op.create_table(
        "auth_login_buckets",
        sa.Column("bucket", sa.String(64), primary_key=True),
        sa.Column("tokens", sa.Float, nullable=False),
        sa.Column("updated", sa.Float, nullable=False),
    )
    op.create_index("ix_auth_login_buckets_updated", "auth_login_buckets", ["updated"])


def downgrade() -> None:
    op.drop_index("ix_auth_login_buckets_updated", table_name="auth_login_buckets")
    op.drop_table("auth_login_buckets")
    op.drop_table("auth_signing_keys")
