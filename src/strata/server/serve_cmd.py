"""``strata serve``: the server's command line (loaded by name from :mod:`strata.cli.main`)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from strata.cli.common import (
    blob_store_option,
    data_option,
    database_option,
    fail,
    secret_key_option,
)
from strata.config import DEFAULT_S3_PART_SIZE, DEFAULT_SOURCE_ALLOW, Listen, ServerSettings
from strata.registry.limits import Limits
from strata.server.auth import parse_trusted_proxies
from strata.server.runner import serve as run_server
from strata.server.startup import StartError, check_start
from strata.server.urls import PublicUrl


@click.command()
@data_option
@click.option("--listen", default="127.0.0.1:5000", show_default=True,
              help="HOST:PORT to listen on.")
@click.option("--workers", type=click.IntRange(0, 64), default=0, show_default=True,
              help="Worker processes sharing the port (SO_REUSEPORT); 0 = one per core.")
@database_option
@blob_store_option
@click.option("--s3-part-size", type=click.IntRange(min=64 << 10), envvar="STRATA_S3_PART_SIZE",
              default=DEFAULT_S3_PART_SIZE, show_default=True,
              help="Bytes per part of an S3 multipart upload (AWS S3 needs at least 5 MiB; "
                   "raised where --max-blob-size would need more than 10,000 parts).")
@click.option("--gc-interval", type=click.FloatRange(min=0.0), default=3600.0, show_default=True,
              help="Seconds between online garbage collections (0 disables).")
@click.option("--gc-grace", type=click.FloatRange(min=0.0), default=3600.0, show_default=True,
              help="Garbage collection keeps anything created or used this recently.")
@click.option("--upload-ttl", type=click.FloatRange(min=1.0), default=86400.0, show_default=True,
              help="Seconds an idle upload session lives.")
@click.option("--upload-idle", type=click.FloatRange(min=1.0),
              default=Limits().upload_idle_seconds, show_default=True,
              help="Seconds an upload session that has received no byte lives.")
@click.option("--max-upload-sessions", type=click.IntRange(1),
              default=Limits().max_upload_sessions, show_default=True,
              help="Open upload sessions per account (all workers); more get 429.")
@click.option("--max-uploads", type=click.IntRange(1), default=256, show_default=True,
              help="Concurrent blob uploads per worker, shared fairly between accounts; more "
                   "get 429 TOOMANYREQUESTS.")
@click.option("--max-blob-size", type=click.IntRange(1), default=Limits().max_blob_bytes,
              show_default=True, help="Largest blob accepted, in bytes.")
@click.option("--max-manifest-references", type=click.IntRange(1),
              default=Limits().max_manifest_references, show_default=True,
              help="Most layers (image) or manifests (index) one manifest may list; more is "
                   "refused with MANIFEST_INVALID.")
@click.option("--body-timeout", type=click.FloatRange(min=0.1), default=120.0, show_default=True,
              help="Seconds a client may send no body bytes before its request is dropped.")
@click.option("--idle-timeout", type=click.FloatRange(min=0.1), default=75.0, show_default=True,
              help="Seconds a connection may sit idle, or take to send a request's headers, "
                   "before it is closed.")
@click.option("--access-log/--no-access-log", default=False, show_default=True,
              help="One JSON line per request on stderr.")
@click.option("--auth/--no-auth", "auth", default=True, show_default=True,
              help="Token authentication: anyone may pull, only accounts with a role push.")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="PEM certificate (chain) to serve HTTPS; needs --tls-key.")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="PEM private key of --tls-cert.")
@click.option("--public-url", default=None, metavar="URL",
              help="Where clients reach this server (scheme://host[:port]): the token realm "
                   "and every absolute URL. Default: the listen address (https with TLS). "
                   "The request's Host header is never used.")
@click.option("--webhook-allow-private", is_flag=True, default=False,
              help="Let webhooks be delivered to loopback, link-local and private addresses "
                   "(refused by default: the server's own network is no webhook's business).")
@click.option("--source-allow", "source_allow", multiple=True, metavar="PREFIX",
              help="Git URL prefix the server may clone image sources from (repeatable; "
                   "default https:// only). Sources outside are refused at submit time.")
@click.option("--build-concurrency", type=click.IntRange(0, 64), default=2, show_default=True,
              help="Build jobs this server runs at once (0: none; strata worker runs them; "
                   "never two of one repository).")
@click.option("--signing-passphrase-file", type=click.Path(exists=True, dir_okay=False,
                                                          path_type=Path), default=None,
              help="File whose first line is the passphrase of the release keys (default: "
                   "$STRATA_SIGNING_PASSPHRASE, else one generated in DATA/auth).")
@click.option("--direct-io/--no-direct-io", "direct_io", default=False, show_default=True,
              envvar="STRATA_DIRECT_IO",
              help="Write upload bodies of 2 MiB and more with O_DIRECT, past the page cache: "
                   "big pushes go faster under memory pressure, but the first pull of a new "
                   "blob reads the disk instead of the page cache.")
@secret_key_option
@click.option("--trusted-proxy", "trusted_proxies", multiple=True, metavar="CIDR",
              help="A load balancer (address or network, repeatable) whose X-Forwarded-For "
                   "names the client: failed logins are then counted per client, not per "
                   "balancer. Never set it for addresses clients can connect from.")
def serve(data_dir: Path, listen: str, workers: int, database_url: str | None,
          blob_store: str | None, s3_part_size: int, gc_interval: float, gc_grace: float,
          upload_ttl: float,
          upload_idle: float, max_upload_sessions: int,
          max_uploads: int, max_blob_size: int, max_manifest_references: int,
          body_timeout: float, idle_timeout: float,
          access_log: bool, auth: bool,
          tls_cert: Path | None, tls_key: Path | None, public_url: str | None,
          webhook_allow_private: bool, source_allow: tuple[str, ...],
          build_concurrency: int, signing_passphrase_file: Path | None,
          direct_io: bool,
          secret_key_file: Path | None, trusted_proxies: tuple[str, ...]) -> None:
    """Serve the registry (OCI Distribution v1.1 at /v2/).

    It creates the data dir (and database) on first start. Every option and environment value
    is checked before anything starts: a bad one ends the command with one line naming it."""
    if (tls_cert is None) != (tls_key is None):
        raise click.UsageError("--tls-cert and --tls-key go together")
    try:
        address = Listen.parse(listen)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--listen") from None
    if public_url is not None:
        try:
            PublicUrl.parse(public_url)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--public-url") from None
    try:
        parse_trusted_proxies(trusted_proxies)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--trusted-proxy") from None
    limits = Limits(max_blob_bytes=max_blob_size, upload_ttl_seconds=upload_ttl,
                    upload_idle_seconds=upload_idle, max_upload_sessions=max_upload_sessions,
                    max_concurrent_uploads=max_uploads, body_timeout_seconds=body_timeout,
                    max_manifest_references=max_manifest_references)
    settings = ServerSettings(
        data_dir=data_dir.resolve(), listen=address, workers=workers or os.cpu_count() or 1,
        database_url=database_url, blob_store=_blob_store(blob_store, s3_part_size), limits=limits,
        s3_part_size=s3_part_size,
        gc_interval=gc_interval, gc_grace=gc_grace,
        idle_timeout=idle_timeout, access_log=access_log, auth=auth,
        tls_cert=tls_cert and tls_cert.resolve(),
        tls_key=tls_key and tls_key.resolve(), public_url=public_url,
        webhook_allow_private=webhook_allow_private,
        source_allow=source_allow or DEFAULT_SOURCE_ALLOW, build_concurrency=build_concurrency,
        direct_io=direct_io,
        signing_passphrase_file=signing_passphrase_file and signing_passphrase_file.resolve(),
        secret_key_file=secret_key_file and secret_key_file.resolve(),
        trusted_proxies=trusted_proxies)
    try:
        check_start(settings)
    except StartError as exc:
        fail(str(exc))
    run_server(settings)


def _blob_store(url: str | None, part_size: int) -> str | None:
    if url:
        from strata.storage.s3 import S3Location  # aiobotocore only when asked for
        from strata.storage.s3_state import MIN_PART_SIZE

        try:
            location = S3Location.parse(url)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--blob-store") from None
        if location.endpoint_url is None and part_size < MIN_PART_SIZE:
            raise click.BadParameter(
                f"{part_size} bytes is below AWS S3's smallest part ({MIN_PART_SIZE}); "
                "only another S3 server (endpoint=…) may take smaller parts",
                param_hint="--s3-part-size")
    return url
