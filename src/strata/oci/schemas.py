"""JSON Schemas for the manifest media types the registry accepts.

Written from OCI image-spec v1.1 (manifest.md, image-index.md, descriptor.md) and Docker's
Image Manifest V2 Schema 2. They check structure; digests are then parsed by :mod:`digest`.
"""

from __future__ import annotations

from typing import Any

MEDIA_TYPE = r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$"

_ANNOTATIONS: dict[str, Any] = {"type": "object", "additionalProperties": {"type": "string"}}

DESCRIPTOR: dict[str, Any] = {
    "type": "object",
    "required": ["mediaType", "digest", "size"],
    "properties": {
        "mediaType": {"type": "string", "pattern": MEDIA_TYPE},
        "digest": {"type": "string"},
        "size": {"type": "integer", "minimum": 0},
        "urls": {"type": "array", "items": {"type": "string"}},
        "annotations": _ANNOTATIONS,
        "artifactType": {"type": "string", "pattern": MEDIA_TYPE},
        "data": {"type": "string"},
        "platform": {
            "type": "object",
            "required": ["architecture", "os"],
            "properties": {
                "architecture": {"type": "string"},
                "os": {"type": "string"},
                "os.version": {"type": "string"},
                "os.features": {"type": "array", "items": {"type": "string"}},
                "variant": {"type": "string"},
                "features": {"type": "array", "items": {"type": "string"}},
            },
        },
    },
}

IMAGE_MANIFEST: dict[str, Any] = {
    "type": "object",
    "required": ["schemaVersion", "config", "layers"],
    "properties": {
        "schemaVersion": {"const": 2},
        "mediaType": {"type": "string"},
        "artifactType": {"type": "string", "pattern": MEDIA_TYPE},
        "config": DESCRIPTOR,
        "layers": {"type": "array", "items": DESCRIPTOR},
        "subject": DESCRIPTOR,
        "annotations": _ANNOTATIONS,
    },
}

INDEX: dict[str, Any] = {
    "type": "object",
    "required": ["schemaVersion", "manifests"],
    "properties": {
        "schemaVersion": {"const": 2},
        "mediaType": {"type": "string"},
        "artifactType": {"type": "string", "pattern": MEDIA_TYPE},
        "manifests": {"type": "array", "items": DESCRIPTOR},
        "subject": DESCRIPTOR,
        "annotations": _ANNOTATIONS,
    },
}
