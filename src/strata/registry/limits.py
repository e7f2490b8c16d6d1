"""Limits the registry enforces on what clients send."""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1 << 20


@dataclass(frozen=True, slots=True)
class Limits:
    max_manifest_bytes: int = 4 * MIB
    # layers of an image / manifests of an index. Docker and podman stop at ~127 layers,
    # multi-platform indexes list tens; 10,000 leaves room for file-per-layer artifacts while
    # bounding what one PUT costs to parse and store.
    max_manifest_references: int = 10_000
    max_blob_bytes: int = 64 * 1024 * MIB
    max_page: int = 10_000
    referrers_page: int = 1000  # referrers listed per page when the client gives no ``n``
    upload_ttl_seconds: float = 24 * 3600.0
    # An upload session that has received no byte expires this much sooner.
    upload_idle_seconds: float = 600.0
    max_upload_sessions: int = 100  # open sessions per account (all workers and nodes)
    max_concurrent_uploads: int = 256  # per worker process, shared fairly between accounts
    body_timeout_seconds: float = 120.0  # longest wait for the next body bytes
