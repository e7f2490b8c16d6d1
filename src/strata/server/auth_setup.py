"""What ``strata serve`` does for authentication and TLS (called from :mod:`strata.server.runner`).

Files in the data dir (directory ``DATA/auth``, mode 0700):

- ``signing-key.pem``: the EC P-256 token-signing key, created on first start (mode 0600) and
  shared by every worker;
- ``admin-password``: written on first start only when ``$STRATA_ADMIN_PASSWORD`` is unset: the
  generated password of the ``admin`` account (mode 0600). Delete it once it is safe elsewhere;
- ``webhook-key``: the key that seals webhook secrets in the database (mode 0600; with or
  without ``--auth``). Nodes sharing a PostgreSQL database need the same file.
"""

from __future__ import annotations

import os
import ssl
import sys
from pathlib import Path

from strata.auth.keys import load_or_create_signing_key
from strata.auth.passwords import PasswordHashing
from strata.auth.secretbox import SecretBox
from strata.auth.service import AuthService, LoginLimits
from strata.auth.shared_ratelimit import SharedRateLimiter
from strata.config import ServerSettings
from strata.meta.account_store import SqlAccountStore
from strata.meta.connection import sqlite_url
from strata.meta.database import Database
from strata.meta.webhook_store import WebhookStore
from strata.release.webhooks import seal_stored, sealed_with_other_keys
from strata.server.auth import TokenAuth
from strata.trust.keys import Passphrase

ADMIN_PASSWORD_ENV = "STRATA_ADMIN_PASSWORD"


def auth_dir(data_dir: Path) -> Path:
    return data_dir / "auth"


def signing_key_path(data_dir: Path) -> Path:
    return auth_dir(data_dir) / "signing-key.pem"


def admin_password_path(data_dir: Path) -> Path:
    return auth_dir(data_dir) / "admin-password"


def webhook_key_path(data_dir: Path) -> Path:
    return auth_dir(data_dir) / "webhook-key"


def signing_passphrase(settings: ServerSettings) -> Passphrase:
    """The release keys' passphrase: ``--signing-passphrase-file``, else
    ``$STRATA_SIGNING_PASSPHRASE``, else ``DATA/auth/signing-passphrase`` (created at random on
    first start; every node of a cluster needs the same one). Never logged."""
    if settings.signing_passphrase_file is not None:
        return Passphrase.from_file(settings.signing_passphrase_file)
    return Passphrase.from_env() or Passphrase.generated_in(
        auth_dir(settings.data_dir) / "signing-passphrase")


def prepare_webhook_key(settings: ServerSettings) -> None:
    """Once, before the workers start: the webhook key (created on first start), and webhook
    rows from before sealing sealed with it. Warns when rows were sealed with another key
    (a node of a PostgreSQL cluster that was not given the first node's key file)."""
    path = webhook_key_path(settings.data_dir)
    box = SecretBox.load_or_create(path)
    db = Database(settings.database_url or sqlite_url(settings.data_dir))
    try:
        outbox = WebhookStore(db)
        sealed = seal_stored(outbox, box)
        foreign = sealed_with_other_keys(outbox, box)
    finally:
        db.close()
    if sealed:
        print(f"strata: sealed the secrets of {sealed} webhook(s) with {path}",
              file=sys.stderr, flush=True)
    if foreign:
        print(f"strata: warning: webhook secrets sealed with key(s) {', '.join(sorted(foreign))} "
              f"cannot be opened with {path} (key {box.key_id}); their deliveries fail until "
              "this node has the same key file as the node that sealed them",
              file=sys.stderr, flush=True)


def prepare_auth(settings: ServerSettings) -> None:
    """Once, before the workers start: the signing key and the first ``admin`` account."""
    if not settings.auth:
        print("strata: authentication is OFF (--no-auth): anyone may push and delete",
              file=sys.stderr, flush=True)
        return
    auth_dir(settings.data_dir).mkdir(parents=True, exist_ok=True, mode=0o700)
    load_or_create_signing_key(signing_key_path(settings.data_dir))
    for path in _limit_paths(settings.data_dir):
        SharedRateLimiter.reset(path)  # the buckets hold this boot's monotonic clock
    db = Database(settings.database_url or sqlite_url(settings.data_dir))
    try:
        service = AuthService(SqlAccountStore(db), PasswordHashing())
        created = service.bootstrap_admin(os.environ.get(ADMIN_PASSWORD_ENV) or None,
                                          admin_password_path(settings.data_dir))
    finally:
        db.close()
    if created is None:
        return
    if created.password_file is None:
        where = f"its password is ${ADMIN_PASSWORD_ENV}"
    else:
        where = f"its password is in {created.password_file} (readable only by you)"
    print(f"strata: created the administrator account {created.user!r}; {where}",
          file=sys.stderr, flush=True)


def build_auth(settings: ServerSettings, db: Database) -> TokenAuth | None:
    """The token-auth component of one worker, or None for an open registry."""
    if not settings.auth:
        return None
    key = load_or_create_signing_key(signing_key_path(settings.data_dir))
    limits = LoginLimits()
    per_user_path, per_ip_path = _limit_paths(settings.data_dir)
    limiters = (SharedRateLimiter(per_user_path, limits.per_user_per_minute,
                                  limits.per_user_burst),
                SharedRateLimiter(per_ip_path, limits.per_ip_per_minute, limits.per_ip_burst))
    service = AuthService(SqlAccountStore(db), PasswordHashing(), limits=limits,
                          limiters=limiters)
    return TokenAuth.create(service, key)


def _limit_paths(data_dir: Path) -> tuple[Path, Path]:
    """Failed-login buckets every worker shares (per client IP + user, per client IP)."""
    return auth_dir(data_dir) / "login-user.limits", auth_dir(data_dir) / "login-ip.limits"


def tls_context(settings: ServerSettings) -> ssl.SSLContext | None:
    """The server TLS context for ``--tls-cert``/``--tls-key``, or None (plain HTTP)."""
    if settings.tls_cert is None and settings.tls_key is None:
        return None
    if settings.tls_cert is None or settings.tls_key is None:
        raise ValueError("--tls-cert and --tls-key go together")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(settings.tls_cert, settings.tls_key)
    return context
