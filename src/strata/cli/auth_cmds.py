"""Token-signing keys and the server's secret key, offline on the database:
``strata auth keys|rotate-keys|new-secret-key``.

- ``strata auth keys [--json]``: the signing keys in the database: kid, created, retired, and
  state (``signing``, ``verifying`` until its tokens have expired, ``expired``).
- ``strata auth rotate-keys [--drop-old]``: a new signing key. Running servers sign with it
  within ten seconds, and accept it at once; the old key goes on verifying the tokens it
  signed until they expire. ``--drop-old`` forgets every earlier key at once (a key that may
  have leaked): tokens they signed stop working, and clients log in again.
- ``strata auth new-secret-key FILE``: a new secret key (mode 0600) to give every node of a
  cluster as ``--secret-key-file`` before the first of them starts.

They take ``--data``/``--database-url`` and ``--secret-key-file`` as ``strata serve`` does (the
keys are sealed with the secret key: rotating needs it).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from strata.auth.keyring import (
    RETIRED_KEYS_VERIFY,
    KeyRingError,
    StoredKey,
    rotate_signing_key,
    server_secret_box,
)
from strata.auth.secretbox import SealError, SecretBox
from strata.cli.common import (
    data_option,
    database_option,
    emit,
    fail,
    open_database,
    secret_key_option,
)
from strata.meta.authkey_store import SqlSigningKeyStore
from strata.storage.private import owner_only_umask, write_private_file


@click.group()
def auth() -> None:
    """Token-signing keys and the server's secret key."""


def _when(ts: float | None) -> str:
    return "-" if ts is None else \
        datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _state(key: StoredKey, now: float) -> str:
    if key.retired_at is None:
        return "signing"
    return "verifying" if key.retired_at + RETIRED_KEYS_VERIFY > now else "expired"


@auth.command("keys")
@data_option
@database_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def keys(data_dir: Path, database_url: str | None, as_json: bool) -> None:
    """List the token-signing keys in the database."""
    with open_database(data_dir, database_url) as db:
        stored = SqlSigningKeyStore(db).keys_sync()
        now = db.now()
    rows = [{"kid": k.kid, "created": _when(k.created_at), "retired": _when(k.retired_at),
             "state": _state(k, now)} for k in stored]
    emit(rows, as_json, lambda rs: "\n".join(
        f"{r['kid']}  {r['state']:<9}  created {r['created']}  retired {r['retired']}"
        for r in rs) or "no signing key yet (strata serve creates one at start)")


@auth.command("rotate-keys")
@data_option
@database_option
@secret_key_option
@click.option("--drop-old", is_flag=True,
              help="Forget every earlier key at once: the tokens they signed stop working "
                   "(for a key that may have leaked).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def rotate_keys(data_dir: Path, database_url: str | None, secret_key_file: Path | None,
                drop_old: bool, as_json: bool) -> None:
    """Make a new token-signing key; the old one verifies its tokens until they expire."""
    owner_only_umask()
    with open_database(data_dir, database_url) as db:
        try:
            box = server_secret_box(data_dir.resolve(), secret_key_file, create=False)
        except SealError as exc:
            fail(f"secret key: {exc}")
            return
        try:
            kid, old = rotate_signing_key(SqlSigningKeyStore(db), box, db.now(),
                                          drop_old=drop_old)
        except KeyRingError as exc:
            fail(str(exc))
            return
    result = {"signing": kid, "dropped" if drop_old else "retired": old}
    emit(result, as_json, lambda r: f"signing with {kid}; " + (
        f"dropped {', '.join(old) or 'nothing'}" if drop_old else
        f"retired {', '.join(old) or 'nothing'} (verifies its tokens until they expire)"))


@auth.command("new-secret-key")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def new_secret_key(path: Path) -> None:
    """Write a new secret key to PATH (mode 0600; never over an existing file)."""
    if path.exists() or path.is_symlink():
        fail(f"{path} exists already; a secret key is never overwritten")
    key = SecretBox.new_key()
    write_private_file(path, key + b"\n")
    click.echo(f"strata: wrote secret key {SecretBox(key).key_id} to {path}; give every node "
               "this file as --secret-key-file", err=True)
