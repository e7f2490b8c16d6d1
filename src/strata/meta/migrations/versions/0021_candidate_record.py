"""A registered build names the build record referrer it pushed (``candidate_inputs.
record_digest``): an image may have several build records (built twice, pushed by two
builds), and its provenance must name the candidate's own.

Revision ID: 0021
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0004"
branch_labels = None
depends_on = "0012"  # the candidate_inputs table (branches run in no set order)


def upgrade() -> None:
    op.add_column("candidate_inputs",
                  sa.Column("record_digest", sa.String(200), nullable=True))


def downgrade() -> None:
    op.drop_column("candidate_inputs", "record_digest")
