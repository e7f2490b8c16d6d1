"""Accounts get a stable unique id and a credential generation (issue 12).

``uid``: random, never reused (not the name, not the integer key, which SQLite may hand out
again after a delete), so a token names exactly one account for ever: a robot created again
under a revoked robot's name is another account. ``generation``: bumped by every change that
must end the tokens and cached logins issued before it (revoke, disable, enable, password,
secret and role changes). Tokens carry both; every use compares them with the row.

Revision ID: 0008
Revises: 0004
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0004"
branch_labels = None
depends_on = ("0003",)


def upgrade() -> None:
    # Plain ADD COLUMN (no table rebuild: with foreign keys on, rebuilding auth_accounts would
    # cascade into auth_role_grants). uid stays nullable in the schema; every writer sets it.
    op.add_column("auth_accounts", sa.Column("uid", sa.String(32), nullable=True))
    op.add_column("auth_accounts", sa.Column("generation", sa.Integer, nullable=False,
                                             server_default="1"))
    bind = op.get_bind()
    accounts = sa.table("auth_accounts", sa.column("id", sa.Integer),
                        sa.column("uid", sa.String))
    for (pk,) in bind.execute(sa.select(accounts.c.id)).all():
        bind.execute(sa.update(accounts).where(accounts.c.id == pk)
                     .values(uid=secrets.token_hex(16)))
    op.create_index("ix_auth_accounts_uid", "auth_accounts", ["uid"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_auth_accounts_uid", table_name="auth_accounts")
    op.drop_column("auth_accounts", "generation")
    op.drop_column("auth_accounts", "uid")
