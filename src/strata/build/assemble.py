"""The image config and manifest of a finished stage, as deterministic bytes.

OCI image-spec ``config.md``: ``created`` (``SOURCE_DATE_EPOCH``), ``architecture``,
``os``, ``config`` (OCI fields in the spec's order, then the Docker fields HEALTHCHECK,
ONBUILD and SHELL record -- ``Healthcheck``, ``OnBuild``, ``Shell`` -- that OCI readers
ignore and Docker/podman show), ``rootfs.diff_ids`` and ``history`` (one entry per
instruction; layers that turned out empty are dropped and their entry marked
``empty_layer``).  Maps are written with sorted keys, as Go's ``encoding/json`` does.
``manifest.md``: an OCI image manifest with the base image annotations of
``annotations.md`` (``org.opencontainers.image.base.name``/``.base.digest``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from strata.build.remote import HOST_ARCH, BlobRef
from strata.build.steps import StageState, iso
from strata.oci import mediatypes as mt

__all__ = ["Assembled", "assemble"]

_CONFIG_ORDER = ("User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Volumes", "WorkingDir",
                 "Labels", "StopSignal", "Healthcheck", "OnBuild", "Shell")
_SORTED_MAPS = ("ExposedPorts", "Volumes", "Labels")


@dataclass(frozen=True)
class Assembled:
    config: bytes
    manifest: bytes
    digest: str
    layers: tuple[BlobRef, ...]
    labels: dict[str, str]


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _sha256(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def assemble(state: StageState, *, sde: int, extra_labels: Mapping[str, str],
             base_name: str | None, base_digest: str | None) -> Assembled:
    """Config and manifest of *state*; waits for the layer blobs still being written."""
    layers: list[BlobRef] = []
    for slot in state.slots:
        blob = slot.result()
        if blob is None:
            if slot.history is not None:
                slot.history["empty_layer"] = True
            continue
        layers.append(blob)
    labels = {**(state.config.get("Labels") or {}), **extra_labels}
    fields = {**state.config, "Labels": labels,
              "Env": [f"{k}={v}" for k, v in state.env.items()]}
    config: dict[str, Any] = {}
    for key in _CONFIG_ORDER:
        value = fields.get(key)
        if value in (None, "", [], {}):
            continue
        config[key] = dict(sorted(value.items())) if key in _SORTED_MAPS else value
    arch, os_name = HOST_ARCH, "linux"
    if state.bases:
        arch = state.bases[0].config.get("architecture") or arch
        os_name = state.bases[0].config.get("os") or os_name
    image_config = {
        "created": iso(sde),
        "architecture": arch,
        "os": os_name,
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
        "history": state.history,
    }
    config_bytes = _dumps(image_config)
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": {"mediaType": mt.OCI_CONFIG, "digest": _sha256(config_bytes),
                   "size": len(config_bytes)},
        "layers": [layer.descriptor() for layer in layers],
    }
    if base_name and base_digest:
        manifest["annotations"] = {"org.opencontainers.image.base.digest": base_digest,
                                   "org.opencontainers.image.base.name": base_name}
    manifest_bytes = _dumps(manifest)
    return Assembled(config_bytes, manifest_bytes, _sha256(manifest_bytes), tuple(layers),
                     dict(sorted(labels.items())))
