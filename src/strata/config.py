"""Typed settings, parsed once at the edge (CLI flags and environment)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from strata.registry.limits import Limits

DEFAULT_URL = "http://127.0.0.1:5000"
DEFAULT_SOURCE_ALLOW: tuple[str, ...] = ("https://",)


def source_refusal(url: str, allow: tuple[str, ...]) -> str | None:
    """Why the server may not clone the git URL *url* (``--source-allow PREFIX``, repeatable;
    default ``https://`` only), or None. A URL must start with one of the prefixes and hold no
    ``..`` path segment, no whitespace or control character and no ``::`` transport
    (``ext::``), so a registered source can never name the server's own files or a command."""
    if not url or any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        return "the source URL is empty or holds whitespace or control characters"
    if "::" in url.split("/", 1)[0] or url.startswith("-"):
        return f"{url}: not a plain git URL"
    path = url.split("://", 1)[-1]
    if ".." in path.split("/"):
        return f"{url}: a '..' path segment is not allowed"
    if not any(url.startswith(prefix) for prefix in allow):
        allowed = ", ".join(allow) or "nothing"
        return (f"{url}: the server clones only sources under {allowed} "
                "(strata serve --source-allow PREFIX)")
    return None


@dataclass(frozen=True, slots=True)
class Listen:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Listen:
        host, sep, port = text.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"--listen wants HOST:PORT, not {text!r}")
        host = host.strip("[]") or "0.0.0.0"
        return cls(host, int(port))

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


DEFAULT_S3_PART_SIZE = 16 << 20  # bytes per S3 multipart part


@dataclass(frozen=True, slots=True)
class ServerSettings:
    data_dir: Path
    listen: Listen = field(default_factory=lambda: Listen("127.0.0.1", 5000))
    workers: int = 1
    database_url: str | None = None  # None: SQLite in the data dir
    blob_store: str | None = None  # None: files in the data dir; or s3://BUCKET/PREFIX?endpoint=
    s3_part_size: int = DEFAULT_S3_PART_SIZE  # raised to fit --max-blob-size in 10,000 parts
    limits: Limits = field(default_factory=Limits)
    housekeeping_interval: float = 600.0
    gc_interval: float = 3600.0  # seconds between in-server collections; 0 disables
    gc_grace: float = 3600.0  # nothing younger than this (or asked for since) is collected
    idle_timeout: float = 75.0  # an idle connection, or one still sending headers, is closed
    access_log: bool = False  # one JSON line per request on stderr
    auth: bool = True  # token authentication (public pull, closed push); False = open registry
    tls_cert: Path | None = None  # PEM certificate chain: serve HTTPS
    tls_key: Path | None = None  # its PEM private key
    public_url: str | None = None  # where clients reach us; None: the listen address
    webhook_allow_private: bool = False  # webhooks may go to loopback/link-local/private hosts
    source_allow: tuple[str, ...] = DEFAULT_SOURCE_ALLOW  # git URL prefixes the server clones
    # the release keys' passphrase (first line); else $STRATA_SIGNING_PASSPHRASE, else one
    # generated in DATA/auth/signing-passphrase
    signing_passphrase_file: Path | None = None
    build_concurrency: int = 2  # build jobs run at once by `strata serve` (0: none, workers do)
    # upload bodies of 2 MiB and more written with O_DIRECT, past the page cache (opt-in: the
    # first pull of a new blob then reads the disk)
    direct_io: bool = False
    # the server's secret key (seals webhook secrets and the token-signing keys in the
    # database): the same file on every node; None: DATA/auth/webhook-key, created at start
    secret_key_file: Path | None = None
    # load balancers whose X-Forwarded-For names the client (failed-login budgets per client)
    trusted_proxies: tuple[str, ...] = ()


def default_url() -> str:
    return os.environ.get("STRATA_URL") or DEFAULT_URL
