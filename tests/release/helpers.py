"""Building small images with NVR labels and pushing them through the registry use-cases."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from strata.errors import Code, RegistryError
from strata.oci import mediatypes as mt
from strata.oci.digest import Digest
from strata.oci.names import ManifestRef, RepositoryName
from strata.registry.service import Registry


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Image:
    """A single-layer OCI image: its blobs and manifest, by digest."""

    layer: bytes
    config: bytes
    manifest: bytes

    @property
    def digest(self) -> str:
        return sha256(self.manifest)


def layer_tar(content: bytes, path: str = "etc/build-id") -> bytes:
    """A real (deterministic) gzipped tar with one file."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(path)
        info.size = len(content)
        info.mtime = 0
        tar.addfile(info, io.BytesIO(content))
    return gzip.compress(raw.getvalue(), mtime=0)


def make_image(name: str | None, version: str | None, release: str | None, *,
               salt: str = "") -> Image:
    labels = {k: v for k, v in (("name", name), ("version", version), ("release", release))
              if v is not None}
    content = f"{name}-{version}-{release}{salt}\n".encode()
    layer = layer_tar(content)
    diff_id = sha256(gzip.decompress(layer))
    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Labels": labels, "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }, sort_keys=True).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
        "config": {"mediaType": mt.OCI_CONFIG, "digest": sha256(config), "size": len(config)},
        "layers": [{"mediaType": mt.OCI_LAYER_GZIP, "digest": sha256(layer),
                    "size": len(layer)}],
    }, sort_keys=True).encode()
    return Image(layer, config, manifest)


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def push(registry: Registry, repository: str, image: Image,
               tag: str | None = None) -> str:
    """Push ``image`` by digest (a candidate), or with ``tag``; returns the manifest digest."""
    repo = RepositoryName.parse(repository)
    for blob in (image.layer, image.config):
        upload = await registry.uploads.start(repo)
        await registry.uploads.finish(repo, upload.id, Digest.parse(sha256(blob)), _once(blob))
    ref = ManifestRef(tag=tag) if tag else ManifestRef(digest=Digest.parse(image.digest))
    result = await registry.manifests.put(repo, ref, image.manifest, mt.OCI_MANIFEST)
    return str(result.digest)


async def push_build(registry: Registry, repository: str, version: str, release: str, *,
                     salt: str = "") -> str:
    name = repository.split("/", 1)[1]
    return await push(registry, repository, make_image(name, version, release, salt=salt))


async def tag_map(registry: Registry, repository: str) -> dict[str, str]:
    """Every tag of ``repository`` and the digest it points to ({} if the repo is unknown)."""
    repo = RepositoryName.parse(repository)
    try:
        page = await registry.discovery.tags(repo, None, None)
    except RegistryError as exc:
        if exc.code is Code.NAME_UNKNOWN:
            return {}
        raise
    return {tag: (await registry.manifests.get(repo, ManifestRef(tag=tag))).digest
            for tag in page.items}


def write_layout(directory: Path, image: Image, ref: str = "build") -> str:
    """Write ``image`` as an OCI image layout (for ``skopeo copy oci:DIR:REF``)."""
    blobs = directory / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    for blob in (image.layer, image.config, image.manifest):
        (blobs / sha256(blob).split(":", 1)[1]).write_bytes(blob)
    (directory / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (directory / "index.json").write_text(json.dumps({
        "schemaVersion": 2,
        "manifests": [{"mediaType": mt.OCI_MANIFEST, "digest": image.digest,
                       "size": len(image.manifest),
                       "annotations": {"org.opencontainers.image.ref.name": ref}}]}))
    return image.digest
