"""What the catalog shows about trust in an image (issue 16): its release signature (which key
of which namespace signed it, or unsigned), its SBOM and provenance referrers with download
links, and where the namespace's public keys are.

:class:`TrustReader` reads it all through the registry's facade (the ``sha256-<hex>.sig`` tag
form of a digest's signatures, ``referrers`` filtered by artifact type, the artifacts'
manifests) and the namespace's public keys (:class:`strata.meta.key_store.KeyStore`); a
signature counts only when it verifies with one of the namespace's keys (current or retired)
and names the digest and the repository. A referrer anyone pushed is listed with
``signed: false``: only the release's own documents carry the namespace's signature.
Download links are ``/v2/<repo>/blobs/<digest>`` of the artifact's one layer: the registry's
pull rule applies to them as to any blob.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from strata.errors import RegistryError
from strata.meta.key_store import KeyRecord, KeyStore
from strata.oci import mediatypes as mt
from strata.oci.digest import Digest
from strata.oci.names import ManifestRef, RepositoryName
from strata.registry.service import Registry
from strata.trust import cosign, keys

SBOM_TYPE = mt.CYCLONEDX_JSON
PROVENANCE_TYPE = mt.IN_TOTO_JSON
DOCUMENTS_LISTED = 5
"""The most SBOMs (and provenance documents) listed for one image."""
MAX_PAYLOAD = 64 << 10
VERIFIED_CACHE = 4096
CREATED = "org.opencontainers.image.created"


def key_url(namespace: str) -> str:
    return f"/keys/{namespace}.pub"


def config_hint(namespace: str) -> str:
    return f"strata trust config {namespace}"


@dataclass(frozen=True, slots=True)
class SignatureStatus:
    """A digest's release signature: the key that verifies it, or unsigned."""

    signed: bool
    key_id: str | None = None
    key_status: str | None = None  # current | retired
    identity: str | None = None  # the docker reference the signed payload names

    def to_json(self) -> dict[str, Any]:
        return {"signed": self.signed, "key_id": self.key_id, "key_status": self.key_status,
                "identity": self.identity}


UNSIGNED = SignatureStatus(False)


@dataclass(frozen=True, slots=True)
class Document:
    """An SBOM or a provenance referrer of an image."""

    manifest: str  # the artifact manifest's digest
    artifact_type: str
    media_type: str  # of its layer (the document)
    blob: str  # the document's digest
    size: int
    url: str  # /v2/<repo>/blobs/<blob>
    created: str | None
    signature: SignatureStatus

    def to_json(self) -> dict[str, Any]:
        return {"manifest": self.manifest, "artifact_type": self.artifact_type,
                "media_type": self.media_type, "digest": self.blob, "size": self.size,
                "url": self.url, "created": self.created,
                "signature": self.signature.to_json()}


@dataclass(frozen=True, slots=True)
class TrustView:
    """Trust in one image digest."""

    repository: str
    digest: str
    namespace: str
    signature: SignatureStatus
    sbom: tuple[Document, ...]
    provenance: tuple[Document, ...]

    @property
    def key_url(self) -> str:
        return key_url(self.namespace)

    def to_json(self) -> dict[str, Any]:
        return {"digest": self.digest, "namespace": self.namespace,
                "signature": self.signature.to_json(),
                "sbom": [d.to_json() for d in self.sbom],
                "provenance": [d.to_json() for d in self.provenance],
                "public_key_url": self.key_url}


def _descriptor_ok(desc: Any) -> bool:
    return isinstance(desc, dict) and isinstance(desc.get("digest"), str)


class TrustReader:
    """Reads :class:`TrustView` values (``keys`` None: no key store, nothing verifies)."""

    def __init__(self, registry: Registry, keys_store: KeyStore | None) -> None:
        self.registry = registry
        self.keys_store = keys_store
        self._verified: OrderedDict[tuple[str, str, str], bool] = OrderedDict()

    async def namespace_keys(self, namespace: str) -> list[KeyRecord]:
        if self.keys_store is None:
            return []
        return await self.keys_store.read(lambda tx: tx.keys(namespace))

    async def view(self, repository: str, namespace: str, digest: str,
                   namespace_keys: Sequence[KeyRecord] | None = None) -> TrustView:
        found = list(namespace_keys) if namespace_keys is not None \
            else await self.namespace_keys(namespace)
        repo = RepositoryName.parse(repository)
        return TrustView(repository, digest, namespace,
                         await self.signature(repo, digest, found),
                         await self._documents(repo, digest, SBOM_TYPE, found),
                         await self._documents(repo, digest, PROVENANCE_TYPE, found))

    async def _blob(self, repo: RepositoryName, digest: str, limit: int) -> bytes | None:
        try:
            handle = await self.registry.blobs.open(repo, Digest.parse(digest))
            if handle.size > limit:
                return None
            return b"".join([c async for c in self.registry.blobs.stream(handle, 0,
                                                                         handle.size)])
        except (RegistryError, ValueError):
            return None

    async def signature(self, repo: RepositoryName, digest: str,
                        namespace_keys: Sequence[KeyRecord]) -> SignatureStatus:
        """The first key of ``namespace_keys`` that verifies a signature of ``digest``."""
        if not namespace_keys:
            return UNSIGNED
        try:
            record = await self.registry.manifests.get(
                repo, ManifestRef(tag=cosign.signature_tag(digest)))
            layers = cosign.layers_of(record.content)
        except (RegistryError, ValueError, KeyError, TypeError, AttributeError):
            return UNSIGNED
        for layer in dict.fromkeys(layers):
            payload = await self._blob(repo, layer.digest, MAX_PAYLOAD)
            if payload is None:
                continue
            try:
                parsed = cosign.parse_payload(payload)
                der = base64.b64decode(layer.signature_b64, validate=True)
            except (ValueError, binascii.Error):
                continue
            if parsed.digest != digest or \
                    parsed.docker_reference.split("/", 1)[-1] != repo.value:
                continue
            for key in namespace_keys:
                if self._verifies(key, layer, payload, der):
                    return SignatureStatus(True, key.key_id, key.status,
                                           parsed.docker_reference)
        return UNSIGNED

    def _verifies(self, key: KeyRecord, layer: cosign.Layer, payload: bytes,
                  der: bytes) -> bool:
        cache_key = (key.key_id, layer.digest, layer.signature_b64)
        known = self._verified.get(cache_key)
        if known is None:
            try:
                known = keys.verify(key.public_pem, payload, der)
            except ValueError:
                known = False
            self._verified[cache_key] = known
            while len(self._verified) > VERIFIED_CACHE:
                self._verified.popitem(last=False)
        return known

    async def _documents(self, repo: RepositoryName, digest: str, artifact_type: str,
                         namespace_keys: Sequence[KeyRecord]) -> tuple[Document, ...]:
        try:
            page = await self.registry.discovery.referrers(repo, Digest.parse(digest),
                                                           artifact_type, n=DOCUMENTS_LISTED)
        except (RegistryError, ValueError):
            return ()
        out = []
        for desc in page.index.get("manifests") or []:
            if not _descriptor_ok(desc):
                continue
            try:
                record = await self.registry.manifests.get(
                    repo, ManifestRef(digest=Digest.parse(desc["digest"])))
                doc = json.loads(record.content)
                layers = doc.get("layers") or []
                if len(layers) != 1 or not _descriptor_ok(layers[0]):
                    continue
                layer = layers[0]
                blob = str(Digest.parse(layer["digest"]))
                created = (doc.get("annotations") or {}).get(CREATED)
                out.append(Document(
                    record.digest, artifact_type, str(layer.get("mediaType", "")), blob,
                    int(layer.get("size", 0)), f"/v2/{repo.value}/blobs/{blob}",
                    created if isinstance(created, str) else None,
                    await self.signature(repo, record.digest, namespace_keys)))
            except (RegistryError, ValueError, KeyError, TypeError, AttributeError):
                continue
        return tuple(out)
