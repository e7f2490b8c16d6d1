"""What ``strata serve`` does for authentication and TLS (called from :mod:`strata.server.runner`).

What the nodes of one database share lives in the database: the token-signing keys (sealed
with the server's secret key, rotated by ``strata auth rotate-keys``, see
:mod:`strata.auth.keyring`) and the failed-login budgets (:mod:`strata.meta.login_store`).

Files in the data dir (directory ``DATA/auth``, mode 0700):

- ``webhook-key``: the server's secret key (mode 0600; with or without ``--auth``), created on
  first start, unless ``--secret-key-file`` names the one every node of a cluster is given. It
  seals webhook secrets and the token-signing keys;
- ``admin-password``: written on first start only when ``$STRATA_ADMIN_PASSWORD`` is unset: the
  generated password of the ``admin`` account (mode 0600). Delete it once it is safe elsewhere;
- ``signing-key.pem``: where the signing key was before it moved to the database; imported and
  removed by the first start that finds it.
"""

from __future__ import annotations

import base64
import os
import ssl
import sys
from pathlib import Path

from strata.auth.keyring import (
    KeyRing,
    KeyRingError,
    KeySource,
    auth_dir,
    default_secret_key_path,
    ensure_signing_key,
    legacy_signing_key_path,
    server_secret_box,
)
from strata.auth.passwords import PasswordHashing
from strata.auth.ratelimit import LoginLimits
from strata.auth.secretbox import SealError, SecretBox
from strata.auth.service import AuthService
from strata.config import ServerSettings
from strata.meta.account_store import SqlAccountStore
from strata.meta.authkey_store import SqlSigningKeyStore
from strata.meta.connection import sqlite_url
from strata.meta.database import Database
from strata.meta.login_store import SqlLoginBudget
from strata.meta.webhook_store import WebhookStore
from strata.release.webhooks import seal_stored, sealed_with_other_keys
from strata.server.auth import (
    DEFAULT_ISSUER,
    DEFAULT_SERVICE,
    TOKEN_TTL_SECONDS,
    TokenAuth,
    parse_trusted_proxies,
)
from strata.trust.keys import Passphrase

ADMIN_PASSWORD_ENV = "STRATA_ADMIN_PASSWORD"


__all__ = ["admin_password_path", "auth_dir", "build_auth", "prepare_auth",
           "prepare_webhook_key", "secret_box", "signing_key_path", "signing_passphrase",
           "tls_context",
           "webhook_key_path"]

#: Where a node kept its signing key before the keys moved to the database.
signing_key_path = legacy_signing_key_path


def admin_password_path(data_dir: Path) -> Path:
    return auth_dir(data_dir) / "admin-password"


def webhook_key_path(data_dir: Path) -> Path:
    """The default secret key (without ``--secret-key-file``)."""
    return default_secret_key_path(data_dir)


def secret_box(settings: ServerSettings, *, create: bool = False) -> SecretBox:
    """The server's secret key (``--secret-key-file``, else ``DATA/auth/webhook-key``); a
    missing or unusable key ends the start with one line saying why."""
    try:
        return server_secret_box(settings.data_dir, settings.secret_key_file, create=create)
    except SealError as exc:
        raise SystemExit(f"strata: error: secret key: {exc}") from None


def signing_passphrase(settings: ServerSettings) -> Passphrase:
    """The release keys' passphrase: ``--signing-passphrase-file``, else
    ``$STRATA_SIGNING_PASSPHRASE``, else ``DATA/auth/signing-passphrase`` if an earlier start
    generated one, else derived from the server's secret key (so the nodes of a cluster, which
    share ``--secret-key-file``, share it with no setting of its own). Never logged."""
    if settings.signing_passphrase_file is not None:
        return Passphrase.from_file(settings.signing_passphrase_file)
    given = Passphrase.from_env()
    if given is not None:
        return given
    generated = auth_dir(settings.data_dir) / "signing-passphrase"
    if generated.exists():
        return Passphrase.from_file(generated)
    derived = base64.urlsafe_b64encode(secret_box(settings).subkey("release-keys"))
    return Passphrase(derived, "the server's secret key (derived)")


def prepare_webhook_key(settings: ServerSettings) -> None:
    """Once, before the workers start: the webhook key (created on first start), and webhook
    rows from before sealing sealed with it. Warns when rows were sealed with another key
    (a node of a PostgreSQL cluster that was not given the first node's key file)."""
    box = secret_box(settings, create=True)
    path = settings.secret_key_file or webhook_key_path(settings.data_dir)
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
    """Once, before the workers start: a token-signing key in the database (the key file of a
    node from before imported), every stored key opened with this node's secret key, and the
    first ``admin`` account."""
    if not settings.auth:
        print("strata: authentication is OFF (--no-auth): anyone may push and delete",
              file=sys.stderr, flush=True)
        return
    auth_dir(settings.data_dir).mkdir(parents=True, exist_ok=True, mode=0o700)
    box = secret_box(settings, create=True)
    db = Database(settings.database_url or sqlite_url(settings.data_dir))
    try:
        try:
            done = ensure_signing_key(SqlSigningKeyStore(db), box,
                                      signing_key_path(settings.data_dir), db.now())
        except KeyRingError as exc:
            raise SystemExit(f"strata: error: {exc}") from None
        service = AuthService(SqlAccountStore(db), PasswordHashing())
        created = service.bootstrap_admin(os.environ.get(ADMIN_PASSWORD_ENV) or None,
                                          admin_password_path(settings.data_dir))
    finally:
        db.close()
    for line in done:
        print(f"strata: {line}", file=sys.stderr, flush=True)
    if created is None:
        return
    if created.password_file is None:
        where = f"its password is ${ADMIN_PASSWORD_ENV}"
    else:
        where = f"its password is in {created.password_file} (readable only by you)"
    print(f"strata: created the administrator account {created.user!r}; {where}",
          file=sys.stderr, flush=True)


def build_auth(settings: ServerSettings, db: Database) -> TokenAuth | None:
    """The token-auth component of one worker (keys and login budgets in the database, shared
    with every other worker and node), or None for an open registry."""
    if not settings.auth:
        return None
    box = secret_box(settings)
    source = KeySource(SqlSigningKeyStore(db), box, clock=db.clock)
    try:
        keys = source.load_sync()
    except KeyRingError as exc:
        raise SystemExit(f"strata: error: {exc}") from None
    ring = KeyRing(keys, issuer_name=DEFAULT_ISSUER, audience=DEFAULT_SERVICE,
                   ttl_seconds=TOKEN_TTL_SECONDS, source=source)
    limits = LoginLimits()
    budget = SqlLoginBudget(db, limits, box.subkey("login-buckets"))
    service = AuthService(SqlAccountStore(db), PasswordHashing(), limits=limits, budget=budget)
    return TokenAuth.with_keys(service, ring,
                               trusted_proxies=parse_trusted_proxies(settings.trusted_proxies))


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
