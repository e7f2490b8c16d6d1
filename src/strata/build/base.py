"""``strata base import``: a root filesystem tarball -> a one-layer base image.

The tarball (plain, gzip, bzip2, xz or zstd; from ``debootstrap``, ``mkosi``, or a few
files around a static busybox) is unpacked safely (:func:`strata.image.unpack_layer`:
nothing can escape the directory) and written back as one reproducible layer: entries
sorted, owners and modes kept, mtimes clamped to ``SOURCE_DATE_EPOCH``.  The config
carries ``ENV PATH``, ``DISTTAG`` (and ``FGC``, the namespace, for labels such as
``name="$FGC/cockpit"``), ``CMD ["/bin/sh"]`` when there is a shell, and the labels
``name``, ``version``, ``release`` (``N.<dist tag>``, the next free one) plus any given.

A base is an image like any other: its repository (at the root of the registry, ``fedora`` or
``f25`` as Fedora published them, or in the namespace, ``f25/fedora``) is registered as an
image of its namespace, the import is pushed by digest (no tag) and registered as a candidate
(``POST /api/v1/candidates``), and a release (scheduled, or ``strata release oob``) gives it its
stream tags ``V-R``, ``V`` and ``latest``: ``FROM fedora:25`` finds it once it is released.
The namespace's ``base_image`` is set to the repository.

The namespace of a root repository: ``--namespace``, else the image's (if it is registered),
else the one namespace whose dist tag is ``--dist-tag``, else the namespace named like the
repository (``f25``).
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
from strata.build.publish import Registry, used_tags
from strata.build.remote import HOST_ARCH, BlobRef, push_blob_file, push_manifest
from strata.build.steps import DEFAULT_PATH, RECORDED_XATTRS, iso
from strata.build.transfer import extract_archive
from strata.client.api import ApiClient
from strata.client.registry import ClientError
from strata.image.layer import Compression, LayerError, scan_tree, write_layer
from strata.oci import mediatypes as mt
from strata.oci.names import RepositoryName
from strata.release.model import split_repository
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


async def _image(api: ApiClient, repo: str) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = await api.image(repo)
    except ClientError as exc:
        if exc.status == 404:
            return None
        raise BuildError(f"cannot read image {repo} from the release API: {exc}") from exc
    return data


async def _namespace(api: ApiClient, repo: str, given: str | None, dist_tag: str | None,
                     image: dict[str, Any] | None) -> dict[str, Any]:
    """The namespace (its JSON) base ``repo`` belongs to (see the module docstring)."""
    try:
        namespaces = {str(n["name"]): n for n in (await api.namespaces())["namespaces"]}
    except ClientError as exc:
        raise BuildError(f"cannot read the namespaces from the release API: {exc}") from exc
    prefix, _ = split_repository(RepositoryName(repo))
    chosen = given
    if prefix is not None:
        if given is not None and given != prefix:
            raise BuildError(f"--name {repo} is in namespace {prefix}, not {given}")
        chosen = prefix
    elif image is not None:
        if given is not None and given != image["namespace"]:
            raise BuildError(f"image {repo} belongs to namespace {image['namespace']}, "
                             f"not {given}")
        chosen = str(image["namespace"])
    elif chosen is None and dist_tag:
        matches = sorted(n for n, ns in namespaces.items() if ns.get("dist_tag") == dist_tag)
        if len(matches) > 1:
            raise BuildError(f"several namespaces have dist tag {dist_tag}: "
                             f"{', '.join(matches)}; say which with --namespace")
        chosen = matches[0] if matches else None
    if chosen is None and repo in namespaces:
        chosen = repo
    if chosen is None:
        hint = f" --dist-tag {dist_tag}" if dist_tag else " --dist-tag TAG"
        raise BuildError(f"base {repo} belongs to no namespace: give --namespace NS, or add "
                         f"the namespace first (strata namespace add NS{hint})")
    if chosen not in namespaces:
        raise BuildError(f"unknown namespace {chosen!r}: add it first "
                         f"(strata namespace add {chosen} --dist-tag ...)")
    return dict(namespaces[chosen])


async def _used_releases(api: ApiClient, repo: str, version: str) -> list[str]:
    try:
        data = await api.candidates(repository=repo, status="all")
    except ClientError as exc:
        raise BuildError(f"cannot list the builds of {repo}: {exc}") from exc
    return [str(b.get("release")) for b in data.get("candidates", [])
            if b.get("version") == version]


async def import_base(registry: Registry, tarball: Path, *, name: str, version: str,
                      namespace: str | None = None, dist_tag: str | None = None,
                      labels: Mapping[str, str] | None = None, source_date_epoch: int = 0,
                      compression: Compression = "gzip",
                      work_parent: Path | None = None) -> dict[str, Any]:
    """Import *tarball* as base image *name* (a repository); push it by digest and register
    it as a candidate of its namespace; returns the result."""
    if not await asyncio.to_thread(os.path.isfile, tarball):
        raise BuildError(f"{tarball}: no such file")
    if not RepositoryName.is_valid(name) or name.count("/") > 1:
        raise BuildError(f"--name {name!r}: a repository <name> or <namespace>/<name> "
                         "(lower case letters, digits, '.', '_', '-')")
    api = registry.api
    image = await _image(api, name)
    ns = await _namespace(api, name, namespace, dist_tag, image)
    ns_dist_tag = str(ns.get("dist_tag") or "")
    if dist_tag is not None and dist_tag != ns_dist_tag:
        raise BuildError(f"--dist-tag {dist_tag} is not the dist tag of namespace "
                         f"{ns['name']} ({ns_dist_tag or 'none'})")
    dist_tag = ns_dist_tag
    if image is None:
        try:
            image = await api.add_image(name, namespace=str(ns["name"]), reason="base import")
        except ClientError as exc:
            raise BuildError(f"registering image {name} in namespace {ns['name']} failed: "
                             f"{exc}") from exc
    release = next_release(version, dist_tag, await used_tags(registry.client, name),
                           await _used_releases(api, name, version))
    try:
        nvr = NVR(name, version, release)
        nvr.check_tag_safe()
    except InvalidNVR as exc:
        raise BuildError(str(exc)) from exc
    env = {"PATH": DEFAULT_PATH}
    if dist_tag:
        env["DISTTAG"] = dist_tag
    env["FGC"] = str(ns["name"])
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
        digest = await push_manifest(registry.client, name, manifest, _sha256(manifest))
    try:
        candidate = await api.add_candidate(f"{name}@{digest}")
    except ClientError as exc:
        raise BuildError(f"the base was pushed as {name}@{digest} but registering it as a "
                         f"candidate failed: {exc}") from exc
    if ns.get("base_image") != name:
        try:
            await api.set_base_image(str(ns["name"]), name)
        except ClientError as exc:
            raise BuildError(f"setting the base image of namespace {ns['name']} failed: "
                             f"{exc}") from exc
    return {"nvr": str(candidate.get("nvr") or nvr), "digest": digest, "repository": name,
            "namespace": ns["name"], "name": split_repository(RepositoryName(name))[1],
            "version": version,
            "release": release, "tag": nvr.version_release,
            "reference": f"{registry.host}/{name}@{digest}", "layer": layer.descriptor(),
            "dist_tag": dist_tag or None, "candidate": candidate,
            "status": candidate.get("status")}
