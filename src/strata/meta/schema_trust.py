"""Trust tables (issue 16): the release keys of each namespace.

``signing_keys``: one row per key a namespace ever had; ``status`` ``current`` (signs new
releases; at most one per namespace, kept so by the writer, which holds the namespace row) or
``retired`` (kept, and published, so older signatures stay verifiable). The private key is
stored only encrypted with the signing passphrase (PKCS#8 PEM); the database is shared by
every node, so every node signs with the same key. Migration ``0014``.
"""

from __future__ import annotations

import sqlalchemy as sa

from strata.meta.schema_base import metadata

signing_keys = sa.Table(
    "signing_keys",
    metadata,
    sa.Column("key_id", sa.String(64), primary_key=True),  # sha256 hex of the public DER
    sa.Column("namespace", sa.String(64), sa.ForeignKey("namespaces.name"), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # current | retired
    sa.Column("public_pem", sa.Text, nullable=False),
    sa.Column("private_pem", sa.Text, nullable=False),  # encrypted (PKCS#8)
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("created_by", sa.String(255), nullable=False),
    sa.Column("retired_at", sa.Float, nullable=True),
    sa.Index("ix_signing_keys_namespace", "namespace", "status"),
)
