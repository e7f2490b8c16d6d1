"""``strata base import``: a root filesystem tarball -> a one-layer base image.

The tarball (plain, gzip, bzip2, xz or zstd; from ``debootstrap``, ``mkosi``, or a few
files around a static busybox) is unpacked safely (:func:`strata.image.unpack_layer`:
nothing can escape the directory) and written back as one reproducible layer: entries
sorted, owners and modes kept, mtimes clamped to ``SOURCE_DATE_EPOCH``.  The config
carries ``ENV PATH``, ``DISTTAG`` (and ``FGC``, the namespace, for labels such as
``name="$FGC/cockpit"``), ``CMD ["/bin/sh"]`` when there is a shell, and the labels
``name``, ``version``, ``release`` (``N.<dist tag>``, the next free one) plus any given.

Base images live at the root of the registry (``fedora``, not ``f25/fedora``) and are
pushed with the tags ``V-R``, ``V`` and ``latest``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from strata.build.errors import BuildError
from strata.build.labels import next_release
from strata.build.publish import Registry, dist_tag_of, used_tags
from strata.build.remote import HOST_ARCH, BlobRef, push_blob_file, push_manifest
from strata.build.steps import DEFAULT_PATH, RECORDED_XATTRS, iso
from strata.build.transfer import extract_archive
from strata.client.registry import ClientError
from strata.image.layer import Compression, LayerError, scan_tree, write_layer
from strata.oci import mediatypes as mt
from strata.release.nvr import NVR, InvalidNVR

__all__ = ["import_base"]


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _sha256(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def build_base_layer(tarball: Path, work: Path, sde: int, compression: Compression
                     ) -> tuple[BlobRef, bool]:
    """The layer blob of *tarball* and whether the root filesystem has ``/bin/sh``."""
    rootfs = work / "rootfs"
    extract_archive(tarball, rootfs)
    has_shell = os.path.lexists(rootfs / "bin" / "sh")
    try:
        layer = write_layer(scan_tree(rootfs, source_date_epoch=sde,
                                      owner=lambda uid, gid: (uid, gid), xattrs=RECORDED_XATTRS),
                            work / "layer", compression=compression)
    except LayerError as exc:
        raise BuildError(f"{tarball}: {exc}") from exc
    return BlobRef(layer.digest, layer.size, layer.media_type, layer.diff_id, layer.path), \
        has_shell


def base_config(layer: BlobRef, *, labels: Mapping[str, str], env: Mapping[str, str],
                shell: bool, sde: int, created_by: str) -> bytes:
    config: dict[str, Any] = {"Env": [f"{k}={v}" for k, v in env.items()]}
    if shell:
        config["Cmd"] = ["/bin/sh"]
    config["Labels"] = dict(sorted(labels.items()))
    return _dumps({
        "created": iso(sde), "architecture": HOST_ARCH, "os": "linux", "config": config,
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
        "history": [{"created": iso(sde), "created_by": created_by}],
    })


async def import_base(registry: Registry, tarball: Path, *, name: str, version: str,
                      namespace: str | None = None, dist_tag: str | None = None,
                      labels: Mapping[str, str] | None = None, source_date_epoch: int = 0,
                      compression: Compression = "gzip",
                      work_parent: Path | None = None) -> dict[str, Any]:
    """Import *tarball* as base image *name* (a root repository); returns the result."""
    if not await asyncio.to_thread(os.path.isfile, tarball):
        raise BuildError(f"{tarball}: no such file")
    if dist_tag is None and namespace is not None:
        dist_tag = await dist_tag_of(registry.api, namespace)
    dist_tag = dist_tag or ""
    release = next_release(version, dist_tag, await used_tags(registry.client, name), [])
    try:
        nvr = NVR(name, version, release)
        nvr.check_tag_safe()
    except InvalidNVR as exc:
        raise BuildError(str(exc)) from exc
    env = {"PATH": DEFAULT_PATH}
    if dist_tag:
        env["DISTTAG"] = dist_tag
    if namespace:
        env["FGC"] = namespace
    all_labels = {"summary": f"Base image {name} {version}", **(labels or {}),
                  "name": name, "version": version, "release": release}
    with tempfile.TemporaryDirectory(prefix="strata-base.", dir=work_parent) as tmp:
        layer, shell = await asyncio.to_thread(build_base_layer, tarball, Path(tmp),
                                               source_date_epoch, compression)
        config = base_config(layer, labels=all_labels, env=env, shell=shell,
                             sde=source_date_epoch,
                             created_by=f"strata base import {tarball.name} # {nvr}")
        manifest = _dumps({
            "schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
            "config": {"mediaType": mt.OCI_CONFIG, "digest": _sha256(config),
                       "size": len(config)},
            "layers": [layer.descriptor()],
        })
        try:
            await push_blob_file(registry.client, name, layer.digest, layer.path)
            if await registry.client.blob_exists(name, _sha256(config)) is None:
                await registry.client.push_blob(name, config)
        except ClientError as exc:
            raise BuildError(f"pushing {name} failed: {exc}") from exc
        tags = [nvr.tag, version, "latest"]
        digest = ""
        for tag in tags:
            digest = await push_manifest(registry.client, name, manifest, tag)
    return {"nvr": str(nvr), "digest": digest, "repository": name, "tags": tags,
            "reference": f"{registry.host}/{name}:{nvr.tag}", "release": release,
            "layer": layer.descriptor(), "dist_tag": dist_tag or None}
