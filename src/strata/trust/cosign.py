"""The cosign signature layout that containers/image (podman, skopeo, cri-o) reads, as bytes.

Formats (sigstore/cosign ``specs/SIGNATURE_SPEC.md``; containers/image
``signature/internal/sigstore_payload.go`` and ``docker/docker_image_dest.go``):

- Payload, media type ``application/vnd.dev.cosign.simplesigning.v1+json``: the "simple
  signing" JSON ``{"critical":{"identity":{"docker-reference":REPO},"image":
  {"docker-manifest-digest":DIGEST},"type":"cosign container image signature"},
  "optional":null}`` -- containers/image accepts exactly these fields, nothing more under
  ``critical``. ``REPO`` is ``host[:port]/repository`` (no tag): it matches
  ``signedIdentity: matchRepository``.
- The signature: base64 (standard alphabet) of the DER ECDSA/SHA-256 signature over the
  payload bytes, in the layer annotation ``dev.cosignproject.cosign/signature``.
- Tag form: an OCI image manifest tagged ``sha256-<hex>.sig`` (served as
  ``application/vnd.oci.image.manifest.v1+json``; containers/image refuses any other type),
  whose config is an OCI image config listing the payload digests as ``rootfs.diff_ids`` and
  whose layers are the payloads. The bytes are what containers/image itself writes when it
  signs (``json.Marshal`` of its structs: the same key order, compact, no trailing newline),
  so a re-signing client finds its signature already there.
- Referrer form (OCI 1.1): an OCI image manifest with ``artifactType``
  ``application/vnd.dev.cosign.artifact.sig.v1+json``, the empty config
  (``application/vnd.oci.empty.v1+json``), the same payload layers and ``subject`` = the
  signed manifest; listed by ``/v2/<name>/referrers/<digest>``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from strata.oci import mediatypes as mt

PAYLOAD_TYPE = mt.COSIGN_PAYLOAD
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
SIGNATURE_ARTIFACT_TYPE = mt.COSIGN_SIGNATURE_ARTIFACT
SIGNATURE_TYPE = "cosign container image signature"
EMPTY_CONFIG = b"{}"
SIG_TAG = re.compile(r"^sha256-[0-9a-f]{64}\.sig$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def _json(value: Any) -> bytes:
    """Compact JSON as Go's ``encoding/json`` writes it (key order as given)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _check_digest(digest: str) -> None:
    if not _DIGEST.match(digest):
        raise ValueError(f"not a sha256 manifest digest: {digest!r}")


def signature_tag(digest: str) -> str:
    """``sha256:<hex>`` -> ``sha256-<hex>.sig`` (the tag containers/image looks up)."""
    _check_digest(digest)
    return digest.replace(":", "-", 1) + ".sig"


def is_signature_tag(tag: str) -> bool:
    return SIG_TAG.match(tag) is not None


def payload(docker_reference: str, digest: str) -> bytes:
    """The simple-signing payload naming ``digest`` as an image of ``docker_reference``."""
    _check_digest(digest)
    return _json({"critical": {"identity": {"docker-reference": docker_reference},
                               "image": {"docker-manifest-digest": digest},
                               "type": SIGNATURE_TYPE},
                  "optional": None})


@dataclass(frozen=True)
class Payload:
    """A parsed simple-signing payload."""

    docker_reference: str
    digest: str


def parse_payload(data: bytes) -> Payload:
    """Read a payload back, as strictly as containers/image does; ValueError otherwise."""
    try:
        doc = json.loads(data)
        critical = doc["critical"]
        if set(doc) != {"critical", "optional"} or set(critical) != {
                "identity", "image", "type"} or critical["type"] != SIGNATURE_TYPE:
            raise ValueError("unexpected fields")
        if set(critical["identity"]) != {"docker-reference"} or set(critical["image"]) != {
                "docker-manifest-digest"}:
            raise ValueError("unexpected fields")
        reference = critical["identity"]["docker-reference"]
        digest = critical["image"]["docker-manifest-digest"]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"not a cosign simple-signing payload: {exc}") from None
    if not isinstance(reference, str) or not isinstance(digest, str):
        raise ValueError("not a cosign simple-signing payload: non-string fields")
    _check_digest(digest)
    return Payload(reference, digest)


@dataclass(frozen=True)
class Layer:
    """One signature: its payload's digest and size, and the base64 of its DER signature."""

    digest: str
    size: int
    signature_b64: str

    @classmethod
    def of(cls, payload_bytes: bytes, der_signature: bytes) -> Layer:
        return cls(_digest(payload_bytes), len(payload_bytes),
                   base64.b64encode(der_signature).decode())

    @classmethod
    def unsigned(cls, payload_bytes: bytes) -> Layer:
        """A layer whose signature is not known yet (to compute a config ahead)."""
        return cls(_digest(payload_bytes), len(payload_bytes), "")

    def descriptor(self) -> dict[str, Any]:
        return {"mediaType": PAYLOAD_TYPE, "digest": self.digest, "size": self.size,
                "annotations": {SIGNATURE_ANNOTATION: self.signature_b64}}


def tag_config(layers: Sequence[Layer]) -> bytes:
    """The config of the tag form: containers/image's empty ``imgspecv1.Image`` with the
    payload digests as diff_ids."""
    return _json({"architecture": "", "os": "", "config": {},
                  "rootfs": {"type": "layers", "diff_ids": [x.digest for x in layers]}})


@dataclass(frozen=True)
class Artifacts:
    """The blobs and the two manifests of a digest's signatures."""

    blobs: tuple[bytes, ...]  # the tag form's config, the empty config (not the payloads)
    tag: str
    tag_manifest: bytes
    referrer_manifest: bytes


def artifacts(layers: Sequence[Layer], subject: dict[str, Any]) -> Artifacts:
    """Both stored forms for the signatures ``layers`` of ``subject`` (an OCI descriptor:
    mediaType, digest, size)."""
    config = tag_config(layers)
    tag_manifest = _json({
        "schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
        "config": {"mediaType": mt.OCI_CONFIG, "digest": _digest(config), "size": len(config)},
        "layers": [x.descriptor() for x in layers]})
    referrer_manifest = _json({
        "schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
        "artifactType": SIGNATURE_ARTIFACT_TYPE,
        "config": {"mediaType": mt.OCI_EMPTY, "digest": mt.EMPTY_JSON_DIGEST,
                   "size": len(EMPTY_CONFIG)},
        "layers": [x.descriptor() for x in layers],
        "subject": {"mediaType": subject["mediaType"], "digest": subject["digest"],
                    "size": subject["size"]}})
    return Artifacts((config, EMPTY_CONFIG), signature_tag(subject["digest"]), tag_manifest,
                     referrer_manifest)


def layers_of(manifest: bytes) -> list[Layer]:
    """The signature layers of a stored signature manifest (either form), in order."""
    doc = json.loads(manifest)
    out = []
    for layer in doc.get("layers", []):
        if layer.get("mediaType") == PAYLOAD_TYPE:
            sig = (layer.get("annotations") or {}).get(SIGNATURE_ANNOTATION)
            if isinstance(sig, str):
                out.append(Layer(str(layer["digest"]), int(layer["size"]), sig))
    return out


def is_signature_manifest(artifact_type: str | None, layer_types: Sequence[str]) -> bool:
    """Whether a pushed manifest is a cosign signature (either form): its artifact type, or
    a simple-signing payload among its layers."""
    return artifact_type == SIGNATURE_ARTIFACT_TYPE or PAYLOAD_TYPE in layer_types
