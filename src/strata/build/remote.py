"""Registry I/O of a build: pull base images into the layer cache, push results.

Pulling (distribution-spec "Pulling manifests/blobs"): the manifest (an image index is
resolved to the host's platform), the config and every layer blob, each checked against
its digest, are kept in ``CACHE/blobs/sha256/``; each layer is unpacked once, in overlay
format, into ``CACHE/layers/<diff_id hex>/`` (checked against the config's ``diff_ids``)
and shared read-only by every later build as an overlay lower directory.

Pushing: blobs go up from their files (never held in memory) -- a blob the repository
already has is skipped, a base layer is first offered as a cross-repository mount
("Mounting a blob from another repository"), then the manifest is put by digest: a build
is a *candidate*, no tag points at it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import platform
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from strata.build.errors import BuildError
from strata.client.registry import ClientError, RegistryClient
from strata.image.layer import LayerError, unpack_layer
from strata.oci import mediatypes as mt

__all__ = ["BlobRef", "ImageRef", "PulledImage", "Puller", "parse_image_ref", "push_blob_file",
           "push_manifest"]

_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le",
         "s390x": "s390x", "riscv64": "riscv64"}
HOST_ARCH = _ARCH.get(platform.machine(), platform.machine())
_LAYER_TYPES = {mt.DOCKER_LAYER: mt.OCI_LAYER_GZIP, mt.OCI_LAYER_GZIP: mt.OCI_LAYER_GZIP,
                mt.OCI_LAYER: mt.OCI_LAYER, mt.OCI_LAYER_ZSTD: mt.OCI_LAYER_ZSTD}
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class ImageRef:
    host: str | None
    repository: str
    tag: str | None
    digest: str | None

    def __str__(self) -> str:
        text = f"{self.host}/{self.repository}" if self.host else self.repository
        if self.tag:
            text += f":{self.tag}"
        return f"{text}@{self.digest}" if self.digest else text


def parse_image_ref(text: str) -> ImageRef:
    """``[host[:port]/]name[:tag][@sha256:...]`` (the Docker reference grammar)."""
    rest, _, digest = text.partition("@")
    if digest and not _DIGEST.match(digest):
        raise BuildError(f"{text!r}: invalid digest")
    first, sep, remainder = rest.partition("/")
    host = None
    if sep and ("." in first or ":" in first or first == "localhost"):
        host, rest = first, remainder
    name, sep, tag = rest.rpartition(":")
    if not sep or "/" in tag:
        name, tag = rest, ""
    if not re.fullmatch(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)"
                        r"[a-z0-9]+)*)*", name):
        raise BuildError(f"{text!r}: invalid image reference")
    return ImageRef(host, name, tag or (None if digest else "latest"), digest or None)


def same_registry(ref: ImageRef, url: str) -> bool:
    return ref.host is None or ref.host == urlsplit(url).netloc


@dataclass(frozen=True)
class BlobRef:
    """A layer of an image: its descriptor, its diff_id and where its bytes are."""

    digest: str
    size: int
    media_type: str
    diff_id: str
    path: Path  # the blob file
    repository: str | None = None  # where it can be mounted from

    def descriptor(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


@dataclass(frozen=True)
class PulledImage:
    reference: str
    repository: str
    digest: str  # the manifest digest (of the platform image)
    config: dict[str, Any]
    layers: tuple[BlobRef, ...]
    layer_dirs: tuple[Path, ...]  # unpacked, bottom first


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


class Puller:
    def __init__(self, client: RegistryClient, cache: Path) -> None:
        self.client = client
        self.cache = cache
        (cache / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        # "layers2": unpacked with both opaque xattrs (trusted. and user.overlay.opaque,
        # for the jail's userxattr overlay); "layers" of older versions had only trusted.
        (cache / "layers2").mkdir(parents=True, exist_ok=True)

    async def pull(self, ref: ImageRef) -> PulledImage:
        repo = ref.repository
        try:
            manifest = await self.client.get_manifest(repo, ref.digest or ref.tag or "latest")
        except ClientError as exc:
            raise BuildError(f"cannot pull {ref}: {exc}") from exc
        doc = manifest.json()
        digest = manifest.digest
        if manifest.media_type in mt.INDEXES:
            digest = self._pick_platform(doc, ref)
            manifest = await self.client.get_manifest(repo, digest)
            doc = manifest.json()
        if ref.digest and ref.digest != manifest.digest and manifest.media_type not in mt.INDEXES:
            raise BuildError(f"{ref}: the registry answered {manifest.digest}")
        config_bytes = await self.client.get_blob(repo, doc["config"]["digest"])
        if f"sha256:{hashlib.sha256(config_bytes).hexdigest()}" != doc["config"]["digest"]:
            raise BuildError(f"{ref}: config blob does not match its digest")
        config = json.loads(config_bytes)
        diff_ids = config.get("rootfs", {}).get("diff_ids", [])
        if len(diff_ids) != len(doc["layers"]):
            raise BuildError(f"{ref}: {len(doc['layers'])} layers but {len(diff_ids)} diff_ids")
        layers = []
        for desc, diff_id in zip(doc["layers"], diff_ids, strict=True):
            media_type = _LAYER_TYPES.get(desc["mediaType"])
            if media_type is None:
                raise BuildError(f"{ref}: unsupported layer type {desc['mediaType']}")
            path = await self._blob(repo, desc["digest"])
            layers.append(BlobRef(desc["digest"], desc["size"], media_type, diff_id, path, repo))
        dirs = [await asyncio.to_thread(self._unpacked, layer) for layer in layers]
        return PulledImage(str(ref), repo, digest, config, tuple(layers), tuple(dirs))

    @staticmethod
    def _pick_platform(doc: dict[str, Any], ref: ImageRef) -> str:
        for child in doc.get("manifests", []):
            plat = child.get("platform") or {}
            if plat.get("os") == "linux" and plat.get("architecture") == HOST_ARCH:
                return str(child["digest"])
        raise BuildError(f"{ref}: no image for linux/{HOST_ARCH} in the index")

    async def _blob(self, repo: str, digest: str) -> Path:
        path = self.cache / "blobs" / "sha256" / digest.split(":", 1)[1]
        if path.exists():
            return path
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".pull.")
        hasher = hashlib.sha256()
        try:
            try:
                async for chunk in self.client.stream_blob(repo, digest):
                    hasher.update(chunk)
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd, view):]
            finally:
                os.close(fd)
            if f"sha256:{hasher.hexdigest()}" != digest:
                raise BuildError(f"{repo}@{digest}: the blob does not match its digest")
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return path

    def _unpacked(self, layer: BlobRef) -> Path:
        target = self.cache / "layers2" / layer.diff_id.split(":", 1)[1]
        if target.is_dir():
            return target
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".unpack."))
        try:
            got = unpack_layer(layer.path, tmp, whiteouts="overlay")
            if got != layer.diff_id:
                raise BuildError(f"layer {layer.digest}: diff_id {got}, config says "
                                 f"{layer.diff_id}")
            os.chmod(tmp, 0o755)
            try:
                os.rename(tmp, target)
            except OSError:
                if not target.is_dir():
                    raise
                shutil.rmtree(tmp)  # another build unpacked it first
        except LayerError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise BuildError(f"layer {layer.digest}: {exc}") from exc
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return target


async def push_blob_file(client: RegistryClient, repo: str, digest: str, path: Path,
                         mount_from: str | None = None) -> None:
    """Make blob *digest* (bytes in *path*) present in *repo*, uploading only if needed."""
    if await client.blob_exists(repo, digest) is not None:
        return
    location = None
    if mount_from and mount_from != repo:
        try:
            async with await client.request("POST", f"/v2/{repo}/blobs/uploads/",
                                            params={"mount": digest, "from": mount_from}) as r:
                if r.status == 201:
                    return
                if r.status == 202:
                    location = r.headers.get("Location")
        except ClientError:
            location = None
    if location is None:
        async with await client.request("POST", f"/v2/{repo}/blobs/uploads/") as resp:
            await client._check(resp, 202)
            location = resp.headers["Location"]
    size = os.stat(path).st_size
    fh = await asyncio.to_thread(open, path, "rb")
    try:
        async with await client.request(
                "PUT", location, params={"digest": digest}, data=fh,
                headers={"Content-Type": "application/octet-stream",
                         "Content-Length": str(size)}) as resp:
            await client._check(resp, 201)
    finally:
        fh.close()


async def push_manifest(client: RegistryClient, repo: str, body: bytes, reference: str,
                        media_type: str = mt.OCI_MANIFEST) -> str:
    try:
        return await client.put_manifest(repo, reference, body, media_type)
    except ClientError as exc:
        raise BuildError(f"pushing the manifest to {repo} failed: {exc}") from exc
