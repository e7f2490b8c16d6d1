"""Reading signatures back as a verifier would: the ``sha256-<hex>.sig`` tag form through the
registry, each layer's payload blob, and the ECDSA check against a public key."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from strata.errors import RegistryError
from strata.oci import mediatypes as mt
from strata.oci.digest import Digest
from strata.oci.names import ManifestRef, RepositoryName
from strata.registry.service import Registry
from strata.trust import cosign, keys


@dataclass(frozen=True)
class Signature:
    payload: bytes
    der: bytes


async def blob(registry: Registry, repository: str, digest: str) -> bytes:
    repo = RepositoryName.parse(repository)
    handle = await registry.blobs.open(repo, Digest.parse(digest))
    return b"".join([c async for c in registry.blobs.stream(handle, 0, handle.size)])


async def sig_manifest(registry: Registry, repository: str, digest: str) -> Any | None:
    """The tag form's manifest record, or None."""
    try:
        return await registry.manifests.get(RepositoryName.parse(repository),
                                            ManifestRef(tag=cosign.signature_tag(digest)))
    except RegistryError:
        return None


async def signatures(registry: Registry, repository: str, digest: str) -> list[Signature]:
    record = await sig_manifest(registry, repository, digest)
    if record is None:
        return []
    assert record.media_type == mt.OCI_MANIFEST
    out = []
    for layer in cosign.layers_of(record.content):
        out.append(Signature(await blob(registry, repository, layer.digest),
                             base64.b64decode(layer.signature_b64)))
    return out


def valid(sig: Signature, public_pem: str, repository: str, digest: str,
          host: str = "registry.example") -> bool:
    parsed = cosign.parse_payload(sig.payload)
    return (parsed.digest == digest and parsed.docker_reference == f"{host}/{repository}"
            and keys.verify(public_pem, sig.payload, sig.der))


async def referrer_types(registry: Registry, repository: str, digest: str) -> list[str]:
    page = await registry.discovery.referrers(RepositoryName.parse(repository),
                                              Digest.parse(digest), None)
    return [str(d.get("artifactType")) for d in page.index["manifests"]]


def dumps(value: Any) -> bytes:
    return json.dumps(value).encode()
