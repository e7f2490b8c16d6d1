"""What ``strata serve`` checks before it starts anything: every option and environment value
it will use, so that a bad one ends the command with one line naming it (``strata: error:
...``) instead of a traceback from a worker process.

Each check raises :class:`StartError`; ``serve_cmd`` turns it into the line and exit status 1.
The checks open and close what they test (a socket bound and closed, the TLS files loaded, the
database reached) and create nothing: a start that fails leaves no data dir behind.
"""

from __future__ import annotations

import os
import socket
import ssl
from collections.abc import Mapping

from strata.auth.service import check_password
from strata.build.errors import BuildError
from strata.build.jail import JailLimits, subid_range
from strata.compose import metadata_database
from strata.config import ServerSettings
from strata.meta.errors import DatabaseUnavailable
from strata.server.auth_setup import ADMIN_PASSWORD_ENV, tls_context
from strata.storage import direct

# Numbers the server reads from its environment (besides the jail's limits).
ENV_SECONDS = ("STRATA_BUILD_POLL", "STRATA_FAULT_PUBLISH_DELAY", "STRATA_WEBHOOK_RETRY_BASE",
               "STRATA_SCHEDULER_INTERVAL", "STRATA_WEBHOOK_INTERVAL")


class StartError(Exception):
    """A setting ``strata serve`` cannot start with; the message is the whole story."""


def check_start(settings: ServerSettings, env: Mapping[str, str] = os.environ) -> None:
    """Raise :class:`StartError` for the first setting the server cannot start with."""
    check_environment(settings, env)
    check_data_dir(settings)
    check_direct_io(settings)
    check_tls(settings)
    check_listen(settings)
    check_database(settings)


def check_environment(settings: ServerSettings, env: Mapping[str, str]) -> None:
    password = env.get(ADMIN_PASSWORD_ENV)
    if settings.auth and password:
        try:
            check_password(password)
        except ValueError as exc:
            raise StartError(f"${ADMIN_PASSWORD_ENV}: {exc}") from None
    for name in ENV_SECONDS:
        text = env.get(name, "").strip()
        try:
            value = float(text) if text else 0.0
        except ValueError:
            raise StartError(f"${name}={text!r}: not a number (seconds)") from None
        if not value >= 0 or value == float("inf"):
            raise StartError(f"${name}={text!r}: must be a finite number ≥ 0")
    try:
        JailLimits.from_env(env)
        subid_range(env)
    except BuildError as exc:
        raise StartError(f"${exc}") from None


def check_data_dir(settings: ServerSettings) -> None:
    """An existing data dir is a directory this user may read and write; a new one can be
    made (it is made by the start itself, not here: a failed start creates nothing)."""
    data = settings.data_dir
    if data.exists() and not data.is_dir():
        raise StartError(f"--data {data}: not a directory")
    existing = data
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise StartError(f"--data {data}: {existing} is not a directory")
    if not os.access(existing, os.R_OK | os.W_OK | os.X_OK):
        what = "" if existing == data else f" (cannot create it in {existing})"
        raise StartError(f"--data {data}: not readable and writable by this user{what}")
    db = data / "strata.db"
    if settings.database_url is None and db.exists() and not os.access(db, os.R_OK | os.W_OK):
        raise StartError(f"--data {data}: {db.name} is not readable and writable by this user")


def check_direct_io(settings: ServerSettings) -> None:
    """``--direct-io`` needs the file store on a filesystem that takes ``O_DIRECT`` writes."""
    if not settings.direct_io:
        return
    if settings.blob_store:
        raise StartError("--direct-io: applies to blobs stored in the data dir, not to "
                         "--blob-store")
    existing = settings.data_dir
    while not existing.exists():
        existing = existing.parent
    try:
        ok = direct.supported(existing)
    except OSError as exc:
        raise StartError(f"--direct-io: cannot probe {existing}: {exc.strerror or exc}") from None
    if not ok:
        raise StartError(f"--direct-io: the filesystem of {existing} does not take O_DIRECT "
                         "writes (leave --direct-io off)")


def check_tls(settings: ServerSettings) -> None:
    try:
        tls_context(settings)
    except (ssl.SSLError, OSError, ValueError) as exc:
        detail = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc)
        raise StartError(f"--tls-cert {settings.tls_cert} / --tls-key {settings.tls_key}: "
                         f"cannot load them: {detail}") from None


def check_listen(settings: ServerSettings) -> None:
    """The address resolves and nothing else listens there (bound once, then closed)."""
    address = settings.listen
    try:
        infos = socket.getaddrinfo(address.host, address.port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise StartError(f"--listen {address}: cannot resolve {address.host!r}: "
                         f"{exc.strerror}") from None
    family, kind, proto, _, sockaddr = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(sockaddr)
        except OSError as exc:
            raise StartError(f"--listen {address}: {exc.strerror or exc}") from None


def check_database(settings: ServerSettings) -> None:
    if settings.database_url is None and not (settings.data_dir / "strata.db").exists():
        return  # a new data dir: the start creates its database
    try:
        db = metadata_database(settings)
    except DatabaseUnavailable as exc:
        raise StartError(f"--database-url: {exc.detail}") from None
    try:
        strata, _current, known = db.schema()
    except DatabaseUnavailable as exc:
        raise StartError(f"cannot reach the database: {exc.detail}") from None
    finally:
        db.close()
    if strata and not known:
        raise StartError(f"{db.url} was written by a newer strata (a schema this one does not "
                         "know); run that version")
