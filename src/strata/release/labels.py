"""Reading a build's NVR labels from the registry (its manifest, then its config blob).

The config blob of an image is an ordinary blob of the repository; its ``config.Labels`` carry
``name``, ``version`` and ``release``. For an image index, every child image with a config must
carry the same three labels (a multi-arch build is one build); children that are not images
(attestations, for example) are skipped.

Bounded work: manifests are decoded by the registry's manifest service (a big one off the
event loop), an index's images are examined once each and at most ``MAX_INDEX_IMAGES`` of
them (a multi-platform build lists a handful, attestations included), and a big config is
decoded on a thread.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from strata.errors import RegistryError
from strata.oci.digest import Digest
from strata.oci.names import ManifestRef, RepositoryName
from strata.registry.service import Registry
from strata.release.errors import from_registry
from strata.release.model import invalid

MAX_CONFIG_BYTES = 4 << 20
MAX_INDEX_IMAGES = 64
_INLINE_CONFIG_BYTES = 64 * 1024
NVR_LABELS = ("name", "version", "release")


async def _config_labels(registry: Registry, repo: RepositoryName,
                         digest: Digest) -> dict[str, str] | None:
    record = await registry.manifests.get(repo, ManifestRef(digest=digest))
    parsed = await registry.manifests.decode(record.content, record.media_type)
    if parsed.config is None:
        return None
    if parsed.config.size > MAX_CONFIG_BYTES:
        raise invalid(f"config of {repo}@{digest} is larger than {MAX_CONFIG_BYTES} bytes")
    handle = await registry.blobs.open(repo, parsed.config.digest)
    chunks = [chunk async for chunk in registry.blobs.stream(handle, 0, handle.size)]
    data = b"".join(chunks)
    try:
        doc: Any = json.loads(data) if len(data) <= _INLINE_CONFIG_BYTES else \
            await asyncio.to_thread(json.loads, data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise invalid(f"config of {repo}@{digest} is not JSON") from None
    config = doc.get("config") if isinstance(doc, dict) else None
    labels = config.get("Labels") if isinstance(config, dict) else None
    if not isinstance(labels, dict):
        return {}
    return {str(k): str(v) for k, v in labels.items() if isinstance(v, str)}


async def read_labels(registry: Registry, repo: RepositoryName, digest: Digest) -> dict[str, str]:
    """The labels of the image (or every image of the index) ``repo@digest``; the registry's
    refusals (``MANIFEST_UNKNOWN``...) are raised as :class:`ReleaseError`."""
    try:
        return await _read_labels(registry, repo, digest)
    except RegistryError as exc:
        raise from_registry(exc) from None


async def _read_labels(registry: Registry, repo: RepositoryName,
                       digest: Digest) -> dict[str, str]:
    record = await registry.manifests.get(repo, ManifestRef(digest=digest))
    parsed = await registry.manifests.decode(record.content, record.media_type)
    if parsed.config is not None:
        return await _config_labels(registry, repo, digest) or {}
    images = [Digest.parse(d) for d in parsed.images]
    if len(images) > MAX_INDEX_IMAGES:
        raise invalid(f"index {repo}@{digest} lists {len(images)} images; a build's index may "
                      f"list at most {MAX_INDEX_IMAGES}")
    found: dict[str, str] | None = None
    for child_digest in images:
        try:
            labels = await _config_labels(registry, repo, child_digest)
        except RegistryError:
            continue
        if labels is None or not any(k in labels for k in NVR_LABELS):
            continue
        nvr = {k: labels.get(k, "") for k in NVR_LABELS}
        if found is None:
            found = labels
        elif {k: found.get(k, "") for k in NVR_LABELS} != nvr:
            raise invalid(f"the images of index {repo}@{digest} carry different NVR labels")
    return found or {}
