"""Upload sessions keep the running sha256 of their recorded bytes (issue 17).

S3 multipart parts cannot be read back, so a session continued on another worker or node
resumes the hash from this state instead of hashing the stored bytes again.

Revision ID: 0017
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0004"
branch_labels = None
depends_on = "0009"  # the uploads table as 0009 left it (branches run in no set order)


def upgrade() -> None:
    op.add_column("uploads", sa.Column("hash_state", sa.LargeBinary, nullable=True))


def downgrade() -> None:
    op.drop_column("uploads", "hash_state")
