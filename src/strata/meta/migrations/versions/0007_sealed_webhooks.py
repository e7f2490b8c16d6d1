"""Webhook secrets sealed with the server key: room for sealed values, and the sealed URL.

``webhooks.secret`` becomes ``Text`` (a sealed secret is longer than the 255 characters of the
plain one) and ``webhooks.url_sealed`` holds the whole URL, sealed, when the shown ``url`` had
to be redacted (credentials in it). The rows themselves are sealed when the server starts
(:func:`strata.release.webhooks.seal_stored`): the key is a file in the data dir, which a
migration does not see.

Revision ID: 0007
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0004"
branch_labels = None
depends_on = "0002"  # the webhooks table (branches run in no set order)


def upgrade() -> None:
    with op.batch_alter_table("webhooks") as batch:
        batch.add_column(sa.Column("url_sealed", sa.Text, nullable=True))
        if op.get_bind().dialect.name == "postgresql":  # SQLite does not enforce lengths
            batch.alter_column("secret", existing_type=sa.String(255), type_=sa.Text,
                               existing_nullable=True)


def downgrade() -> None:
    with op.batch_alter_table("webhooks") as batch:
        batch.drop_column("url_sealed")
        if op.get_bind().dialect.name == "postgresql":
            batch.alter_column("secret", existing_type=sa.Text, type_=sa.String(255),
                               existing_nullable=True)
