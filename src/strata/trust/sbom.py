"""The SBOM of a released image: CycloneDX 1.6 JSON, validated with cyclonedx-python-lib.

Made at release publish (:mod:`strata.trust.attach`) from the image's recorded OS package list
(the candidate's ``candidate_inputs``, package types from the build record) and its layers:

* ``metadata.component``: the image (type ``container``, name ``HOST/REPOSITORY``, version the
  NVR's version-release, the manifest digest as its SHA-256 hash and ``pkg:oci`` purl);
* one ``file`` component per layer (its blob digest as hash; media type and size as
  properties) and one ``library`` component per package (``pkg:rpm``/``pkg:deb``/``pkg:apk``
  purl with ``arch``; ``pkg:generic`` when the type is unknown);
* the image depends on every layer and package.

The document is a function of the image: serial number = UUIDv5 of the manifest digest,
timestamp = the image's creation time (``SOURCE_DATE_EPOCH``), bom-refs from digests and
purls. Publishing twice gives the same bytes, hence the same artifact digest.

The JSON is written here, byte for byte what cyclonedx-python-lib's model and outputter write
for the same document (tests/trust/test_sbom_bytes.py compares them): the library's
``Bom.register_dependency`` and ``Bom.validate`` scan the dependency list for every component,
quadratic in the number of packages (2.9 s of CPU for 2,000 packages, most of a release's
publish preparation); writing the document directly is linear. Its order is the library's:
components by (type, name, version -- none last --, bom-ref), dependencies by ref, keys sorted,
``$schema``, ``bomFormat`` and ``specVersion`` last.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

from packageurl import PackageURL

from strata.oci import mediatypes as mt
from strata.trust.facts import ImageFacts, PackageFact

__all__ = ["SBOM_ARTIFACT_TYPE", "SBOM_MEDIA_TYPE", "make_sbom", "validate_sbom"]

SBOM_MEDIA_TYPE = mt.CYCLONEDX_JSON
SBOM_ARTIFACT_TYPE = SBOM_MEDIA_TYPE
SPEC_VERSION = "1.6"
SCHEMA_URI = "http://cyclonedx.org/schema/bom-1.6.schema.json"
_PURL_TYPES = {"rpm": "rpm", "deb": "deb", "apk": "apk"}


def _sha256(digest: str) -> list[dict[str, str]]:
    return [{"alg": "SHA-256", "content": digest.removeprefix("sha256:")}]


def _purl(package: PackageFact) -> str:
    qualifiers = {"arch": package.arch} if package.arch else None
    return str(PackageURL(type=_PURL_TYPES.get(package.kind, "generic"), name=package.name,
                          version=package.version or None,
                          qualifiers=qualifiers).to_string())


def _image(facts: ImageFacts) -> dict[str, Any]:
    repo_name = facts.repository.rsplit("/", 1)[-1]
    purl = PackageURL(type="oci", name=repo_name, version=facts.digest,
                      qualifiers={"repository_url": facts.name})
    version = facts.nvr.split("-", 1)[-1] if "-" in facts.nvr else None
    return _component("container", facts.name, version, facts.digest,
                      hashes=_sha256(facts.digest), purl=purl.to_string(),
                      properties=[("strata:nvr", facts.nvr)])


def _component(kind: str, name: str, version: str | None, ref: str, *,
               hashes: list[dict[str, str]] | None = None, purl: str | None = None,
               properties: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    """A component with its keys in sorted order (as the library writes them)."""
    out: dict[str, Any] = {"bom-ref": ref}
    if hashes:
        out["hashes"] = hashes
    out["name"] = name
    if properties:
        out["properties"] = [{"name": n, "value": v} for n, v in sorted(properties)]
    if purl is not None:
        out["purl"] = purl
    out["type"] = kind
    if version is not None:
        out["version"] = version
    return out


def _order(component: dict[str, Any]) -> tuple[Any, ...]:
    """The library's component order: type, name, version (a missing one last), bom-ref."""
    version = component.get("version")
    return (component["type"], component["name"], version is None, version or "",
            component["bom-ref"])


def _timestamp(created: dt.datetime) -> str:
    return (created if created.tzinfo is not None else created.astimezone()).isoformat()


def make_sbom(facts: ImageFacts) -> bytes:
    """The CycloneDX 1.6 JSON document of ``facts`` (deterministic bytes)."""
    image = _image(facts)
    parts: list[dict[str, Any]] = []
    for index, layer in enumerate(facts.layers):
        parts.append(_component(
            "file", layer.digest, None, f"layer:{index}:{layer.digest}",
            hashes=_sha256(layer.digest),
            properties=[("oci:mediaType", layer.media_type), ("oci:size", str(layer.size)),
                        ("oci:layerIndex", str(index))]))
    seen: set[str] = set()
    for package in facts.packages:
        purl = _purl(package)
        if purl in seen:
            continue
        seen.add(purl)
        parts.append(_component("library", package.name, package.version or None, purl,
                                purl=purl))
    parts.sort(key=_order)
    refs = sorted(part["bom-ref"] for part in parts)
    dependencies: list[dict[str, Any]] = [{"ref": ref} for ref in refs]
    dependencies.append({"dependsOn": refs, "ref": image["bom-ref"]} if refs
                        else {"ref": image["bom-ref"]})
    dependencies.sort(key=lambda d: str(d["ref"]))
    document: dict[str, Any] = {}
    if parts:
        document["components"] = parts
    document["dependencies"] = dependencies
    document["metadata"] = {"component": image, "timestamp": _timestamp(facts.created)}
    serial = uuid.uuid5(uuid.NAMESPACE_URL, f"strata:sbom:{facts.digest}")
    document["serialNumber"] = serial.urn
    document["version"] = 1
    document["$schema"] = SCHEMA_URI
    document["bomFormat"] = "CycloneDX"
    document["specVersion"] = SPEC_VERSION
    return json.dumps(document).encode()


def validate_sbom(body: bytes) -> str | None:
    """The CycloneDX 1.6 schema's complaint about ``body``, or None when it is valid."""
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(body.decode("utf-8"))
    return None if error is None else str(error)
