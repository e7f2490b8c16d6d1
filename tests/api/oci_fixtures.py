"""Small OCI/Docker objects as bytes for the api tier: blobs, configs, manifests, indexes."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

EMPTY_JSON = b"{}"
EMPTY_JSON_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"


def digest(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def canonical(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


@dataclass(frozen=True)
class Blob:
    data: bytes
    media_type: str = OCI_LAYER_GZIP
    algorithm: str = "sha256"

    @property
    def digest(self) -> str:
        return digest(self.data, self.algorithm)

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": len(self.data),
                **extra}


def layer(seed: str, size: int = 64, algorithm: str = "sha256") -> Blob:
    """Deterministic pseudo-random bytes standing in for a compressed layer."""
    out = bytearray()
    block = seed.encode()
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out += block
    return Blob(bytes(out[:size]), OCI_LAYER_GZIP, algorithm)


def config(seed: str = "", media_type: str = OCI_CONFIG) -> Blob:
    doc = {"architecture": "amd64", "os": "linux",
           "config": {"Labels": {"seed": seed}} if seed else {},
           "rootfs": {"type": "layers", "diff_ids": []}}
    return Blob(canonical(doc), media_type)


EMPTY_CONFIG = Blob(EMPTY_JSON, OCI_EMPTY)


@dataclass(frozen=True)
class Manifest:
    body: bytes
    media_type: str
    blobs: tuple[Blob, ...] = field(default=())

    @property
    def digest(self) -> str:
        return digest(self.body)

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": len(self.body),
                **extra}


def image(seed: str = "img", *, layers: int = 1, media_type: str = OCI_MANIFEST,
          subject: Manifest | None = None, artifact_type: str | None = None,
          annotations: dict[str, str] | None = None, cfg: Blob | None = None,
          layer_blobs: tuple[Blob, ...] | None = None) -> Manifest:
    """An image manifest with its config and ``layers`` layers (all returned as ``blobs``)."""
    docker = media_type == DOCKER_MANIFEST
    if cfg is None:
        cfg = config(seed, DOCKER_CONFIG if docker else OCI_CONFIG)
    if layer_blobs is None:
        layer_blobs = tuple(layer(f"{seed}/{i}") for i in range(layers))
    if docker:
        layer_blobs = tuple(Blob(b.data, DOCKER_LAYER, b.algorithm) for b in layer_blobs)
    doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": media_type}
    if artifact_type is not None:
        doc["artifactType"] = artifact_type
    doc["config"] = cfg.descriptor()
    doc["layers"] = [b.descriptor() for b in layer_blobs]
    if subject is not None:
        doc["subject"] = subject.descriptor()
    if annotations:
        doc["annotations"] = annotations
    return Manifest(canonical(doc), media_type, (cfg, *layer_blobs))


def artifact(artifact_type: str, subject: Manifest | None = None, *, payload: bytes = b"sig",
             annotations: dict[str, str] | None = None) -> Manifest:
    """An OCI 1.1 artifact: ``artifactType`` and the empty config."""
    blob = Blob(payload, "application/vnd.example.payload")
    return image(artifact_type, media_type=OCI_MANIFEST, subject=subject,
                 artifact_type=artifact_type, annotations=annotations, cfg=EMPTY_CONFIG,
                 layer_blobs=(blob,))


def index(children: list[Manifest], *, media_type: str = OCI_INDEX,
          subject: Manifest | None = None, artifact_type: str | None = None,
          annotations: dict[str, str] | None = None) -> Manifest:
    doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": media_type}
    if artifact_type is not None:
        doc["artifactType"] = artifact_type
    doc["manifests"] = [
        c.descriptor(platform={"architecture": f"arch{i}", "os": "linux"})
        for i, c in enumerate(children)]
    if subject is not None:
        doc["subject"] = subject.descriptor()
    if annotations:
        doc["annotations"] = annotations
    return Manifest(canonical(doc), media_type)
