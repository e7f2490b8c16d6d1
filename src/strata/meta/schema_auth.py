"""Accounts and role grants (issue 4): who may authenticate, and what each account may do.

- ``auth_accounts``: one row per user (``kind='user'``, argon2id ``password_hash``) or robot
  (``kind='robot'``, SHA-256 ``secret_hash`` of its random token, indexed for lookup). Names are
  unique across both kinds, so a token's ``sub`` names exactly one account. A revoked robot keeps
  its row (``revoked_at`` set, ``secret_hash`` cleared) for the record. ``uid`` (random, never
  reused) and ``generation`` (bumped by revoke, disable, enable, password, secret and role
  changes) are what a token is bound to (migration ``0008``).
- ``auth_role_grants``: ``(account, role, image)``; ``image`` is the repository a ``maintainer``
  grant covers and ``''`` for the roles that are not per image.

- ``auth_signing_keys`` (migration ``0015``): the token-signing keys every node shares, each
  an EC P-256 private key as PEM sealed with the server's secret key
  (:class:`strata.auth.secretbox.SecretBox`), named by its libtrust ``kid``. ``active`` is 1 on
  the one key that signs (unique: two nodes creating the first key at once cannot both win)
  and NULL on retired keys, which verify until ``retired_at`` + the token lifetime.
- ``auth_login_buckets`` (migration ``0015``): the failed-login token buckets all nodes share,
  one row per (keyed hash of) client IP + user name or client IP; a row exists only while its
  bucket is not full.

Declared on :data:`strata.meta.schema_base.metadata`; migration ``0003`` creates the first two.
"""

from __future__ import annotations

import sqlalchemy as sa

from strata.meta.schema_base import metadata

auth_accounts = sa.Table(
    "auth_accounts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(64), nullable=False, unique=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("password_hash", sa.String(255), nullable=True),
    sa.Column("secret_hash", sa.String(64), nullable=True, unique=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("revoked_at", sa.Float, nullable=True),
    # Migration 0008: a random id never reused (tokens name it, not the name) and a counter
    # bumped by every change that ends the tokens and cached logins issued before it.
    sa.Column("uid", sa.String(32), nullable=True),
    sa.Column("generation", sa.Integer, nullable=False, server_default="1"),
    sa.Index("ix_auth_accounts_uid", "uid", unique=True),
)

auth_role_grants = sa.Table(
    "auth_role_grants",
    metadata,
    sa.Column("account_id", sa.Integer, sa.ForeignKey("auth_accounts.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("role", sa.String(32), primary_key=True),
    sa.Column("image", sa.String(255), primary_key=True),
)

auth_signing_keys = sa.Table(
    "auth_signing_keys",
    metadata,
    sa.Column("kid", sa.String(64), primary_key=True),
    sa.Column("sealed_key", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("retired_at", sa.Float, nullable=True),
    sa.Column("active", sa.Integer, nullable=True, unique=True),
)

auth_login_buckets = sa.Table(
    "auth_login_buckets",
    metadata,
    sa.Column("bucket", sa.String(64), primary_key=True),
    sa.Column("tokens", sa.Float, nullable=False),
    sa.Column("updated", sa.Float, nullable=False),
    sa.Index("ix_auth_login_buckets_updated", "updated"),
)
