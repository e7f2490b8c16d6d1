"""Parsing and validating pushed manifests (distribution-spec "Pushing Manifests").

A manifest is kept byte for byte as pushed; :func:`parse_manifest` only reads it to learn its
media type, what it references (blobs, child manifests) and its ``subject``. Structural checks
come from the JSON Schemas in :mod:`strata.oci.schemas`.

Cost: a descriptor checked by ``jsonschema`` takes ~50 µs, which made a 4 MiB manifest of
27,000 layers cost 1.3 s of CPU (json.loads: 36 ms). So the number of ``layers``/``manifests``
is capped (``max_references``) right after decoding, before anything else looks at them, and
each listed descriptor is checked by :func:`_plain_descriptor` (~2 µs) — the schema validator
runs only on a descriptor that check does not accept outright, so what is accepted and the
error messages stay the schema's.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from strata.errors import Code, RegistryError
from strata.oci import mediatypes as mt
from strata.oci import schemas
from strata.oci.digest import Digest

# The schemas with the descriptor lists' items left to _check_shell.
_IMAGE_SHELL = jsonschema.Draft202012Validator(
    {**schemas.IMAGE_MANIFEST, "properties": {**schemas.IMAGE_MANIFEST["properties"],
                                              "layers": {"type": "array"}}})
_INDEX_SHELL = jsonschema.Draft202012Validator(
    {**schemas.INDEX, "properties": {**schemas.INDEX["properties"],
                                     "manifests": {"type": "array"}}})
_DESCRIPTOR_VALIDATOR = jsonschema.Draft202012Validator(schemas.DESCRIPTOR)
_MEDIA_TYPE = re.compile(schemas.MEDIA_TYPE)
_GENERIC_TYPES = frozenset({"", "application/json", "application/octet-stream"})


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: str
    digest: Digest
    size: int
    artifact_type: str | None = None
    annotations: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    urls: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Descriptor:
        return cls(
            media_type=obj["mediaType"],
            digest=Digest.parse(obj["digest"]),
            size=obj["size"],
            artifact_type=obj.get("artifactType"),
            annotations=dict(obj.get("annotations") or {}),
            urls=tuple(obj.get("urls") or ()),
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": str(self.digest),
            "size": self.size,
        }
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.annotations:
            out["annotations"] = self.annotations
        return out


@dataclass(frozen=True, slots=True)
class ParsedManifest:
    media_type: str
    config: Descriptor | None
    blobs: tuple[Descriptor, ...]  # config + layers that must be present as blobs
    children: tuple[Descriptor, ...]  # child manifests of an index
    subject: Descriptor | None
    artifact_type: str | None  # artifactType, else the config media type (for referrers)
    annotations: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    labels: dict[str, str] = field(default_factory=dict, hash=False, compare=False)


def _invalid(detail: str) -> RegistryError:
    # Clients (containers/image, docker) show the message, not the detail: say what is wrong.
    return RegistryError(Code.MANIFEST_INVALID, detail,
                         message=f"{Code.MANIFEST_INVALID.message}: {detail[:300]}")


def parse_manifest(body: bytes, content_type: str | None, *,
                   max_references: int | None = None) -> ParsedManifest:
    """Validate ``body`` pushed with ``content_type`` and describe what it references.

    ``max_references``: the most ``layers`` (an image) or ``manifests`` (an index) accepted;
    more is ``MANIFEST_INVALID`` naming the limit, decided before any descriptor is checked."""
    ctype = (content_type or "").split(";", 1)[0].strip().lower()
    if ctype in mt.SCHEMA1:
        raise _invalid("Docker schema 1 manifests are not supported; push schema 2 or OCI")
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as exc:  # also too deep, or an int too long
        raise _invalid(f"manifest is not valid JSON: {str(exc)[:200]}") from None
    if not isinstance(doc, dict):
        raise _invalid("manifest must be a JSON object")
    if doc.get("schemaVersion") == 1:
        raise _invalid("Docker schema 1 manifests are not supported; push schema 2 or OCI")
    field_type = doc.get("mediaType")
    if field_type is not None and not isinstance(field_type, str):
        raise _invalid("mediaType must be a string")
    media_type = _decide_media_type(ctype, field_type, doc)
    key = "manifests" if media_type in mt.INDEXES else "layers"
    listed = doc.get(key)
    if max_references is not None and isinstance(listed, list) and len(listed) > max_references:
        raise RegistryError(
            Code.MANIFEST_INVALID, {"references": len(listed), "limit": max_references},
            message=f"manifest invalid: it lists {len(listed)} {key}; this registry accepts at "
                    f"most {max_references} references per manifest")
    if media_type in mt.INDEXES:
        return _parse_index(doc, media_type)
    return _parse_image(doc, media_type)


def _decide_media_type(ctype: str, field_type: str | None, doc: dict[str, Any]) -> str:
    if ctype and ctype not in _GENERIC_TYPES:
        if ctype not in mt.MANIFESTS:
            raise RegistryError(
                Code.MANIFEST_INVALID,
                f"unsupported manifest media type {ctype!r}",
                message="manifest invalid: unsupported media type",
            )
        if field_type is not None and field_type != ctype:
            raise _invalid(f"mediaType {field_type!r} does not match Content-Type {ctype!r}")
        return ctype
    if field_type is not None:
        if field_type not in mt.MANIFESTS:
            raise _invalid(f"unsupported manifest media type {field_type!r}")
        return field_type
    if "manifests" in doc:
        return mt.OCI_INDEX
    if "config" in doc:
        return mt.OCI_MANIFEST
    raise _invalid("cannot tell the manifest's media type: no Content-Type and no mediaType")


def _schema_check(validator: jsonschema.Draft202012Validator, doc: Any,
                  prefix: str = "") -> None:
    error = jsonschema.exceptions.best_match(validator.iter_errors(doc))
    if error is not None:
        where = prefix + "/".join(str(p) for p in error.absolute_path) or "manifest"
        raise _invalid(f"{where.rstrip('/')}: {error.message}")


def _check_shell(shell: jsonschema.Draft202012Validator, doc: dict[str, Any], key: str) -> None:
    """The document against its schema, the descriptors listed under ``key`` one by one."""
    _schema_check(shell, doc)
    for i, item in enumerate(doc[key]):
        if not _plain_descriptor(item):
            _schema_check(_DESCRIPTOR_VALIDATOR, item, f"{key}/{i}/")


def _strings(value: Any) -> bool:
    return type(value) is list and all(type(v) is str for v in value)


_PLATFORM_STRINGS = ("os.version", "variant")
_PLATFORM_LISTS = ("os.features", "features")


def _plain_platform(value: Any) -> bool:
    return (type(value) is dict and type(value.get("architecture")) is str
            and type(value.get("os")) is str
            and all(type(value[k]) is str for k in _PLATFORM_STRINGS if k in value)
            and all(_strings(value[k]) for k in _PLATFORM_LISTS if k in value))


def _plain_descriptor(obj: Any) -> bool:
    """True when ``obj`` certainly satisfies ``schemas.DESCRIPTOR`` (False: ask the schema).

    Stricter than the schema on purpose (an integral float size, say, goes to the schema)."""
    if type(obj) is not dict:
        return False
    media_type, digest, size = obj.get("mediaType"), obj.get("digest"), obj.get("size")
    if type(media_type) is not str or type(digest) is not str or type(size) is not int \
            or size < 0 or _MEDIA_TYPE.search(media_type) is None:
        return False
    for key, value in obj.items():
        if key == "annotations":
            if type(value) is not dict or any(type(v) is not str for v in value.values()):
                return False
        elif key == "urls":
            if not _strings(value):
                return False
        elif key == "artifactType":
            if type(value) is not str or _MEDIA_TYPE.search(value) is None:
                return False
        elif key == "data":
            if type(value) is not str:
                return False
        elif key == "platform" and not _plain_platform(value):
            return False
    return True


def _descriptor(obj: dict[str, Any], where: str) -> Descriptor:
    try:
        return Descriptor.from_json(obj)
    except RegistryError as exc:
        raise _invalid(f"{where}: {exc.detail}") from None


def _parse_image(doc: dict[str, Any], media_type: str) -> ParsedManifest:
    _check_shell(_IMAGE_SHELL, doc, "layers")
    if media_type == mt.DOCKER_MANIFEST and doc.get("mediaType") != mt.DOCKER_MANIFEST:
        raise _invalid("Docker schema 2 manifests must carry their mediaType")
    config = _descriptor(doc["config"], "config")
    layers = tuple(_descriptor(layer, f"layers/{i}") for i, layer in enumerate(doc["layers"]))
    subject = _descriptor(doc["subject"], "subject") if "subject" in doc else None
    # Foreign layers (with urls) are not required to be in the registry.
    required = (config, *(layer for layer in layers if not layer.urls))
    artifact_type = doc.get("artifactType") or config.media_type
    return ParsedManifest(
        media_type=media_type,
        config=config,
        blobs=required,
        children=(),
        subject=subject,
        artifact_type=artifact_type,
        annotations=dict(doc.get("annotations") or {}),
    )


def _parse_index(doc: dict[str, Any], media_type: str) -> ParsedManifest:
    _check_shell(_INDEX_SHELL, doc, "manifests")
    children = tuple(
        _descriptor(child, f"manifests/{i}") for i, child in enumerate(doc["manifests"])
    )
    subject = _descriptor(doc["subject"], "subject") if "subject" in doc else None
    return ParsedManifest(
        media_type=media_type,
        config=None,
        blobs=(),
        children=children,
        subject=subject,
        artifact_type=doc.get("artifactType"),
        annotations=dict(doc.get("annotations") or {}),
    )
