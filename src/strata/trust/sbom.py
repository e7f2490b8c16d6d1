"""The SBOM of a released image: CycloneDX 1.6 JSON made with cyclonedx-python-lib.

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
"""

from __future__ import annotations

import uuid

from cyclonedx.model import HashAlgorithm, HashType, Property
from cyclonedx.model.bom import Bom, BomMetaData
from cyclonedx.model.bom_ref import BomRef
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.output import make_outputter
from cyclonedx.schema import OutputFormat, SchemaVersion
from packageurl import PackageURL

from strata.oci import mediatypes as mt
from strata.trust.facts import ImageFacts, PackageFact

__all__ = ["SBOM_ARTIFACT_TYPE", "SBOM_MEDIA_TYPE", "make_sbom", "validate_sbom"]

SBOM_MEDIA_TYPE = mt.CYCLONEDX_JSON
SBOM_ARTIFACT_TYPE = SBOM_MEDIA_TYPE
SCHEMA = SchemaVersion.V1_6
_PURL_TYPES = {"rpm": "rpm", "deb": "deb", "apk": "apk"}


def _sha256(digest: str) -> HashType:
    return HashType(alg=HashAlgorithm.SHA_256, content=digest.removeprefix("sha256:"))


def _purl(package: PackageFact) -> PackageURL:
    qualifiers = {"arch": package.arch} if package.arch else None
    return PackageURL(type=_PURL_TYPES.get(package.kind, "generic"), name=package.name,
                      version=package.version or None, qualifiers=qualifiers)


def _image(facts: ImageFacts) -> Component:
    repo_name = facts.repository.rsplit("/", 1)[-1]
    purl = PackageURL(type="oci", name=repo_name, version=facts.digest,
                      qualifiers={"repository_url": facts.name})
    return Component(
        name=facts.name, version=facts.nvr.split("-", 1)[-1] if "-" in facts.nvr else None,
        type=ComponentType.CONTAINER, bom_ref=BomRef(facts.digest), purl=purl,
        hashes=[_sha256(facts.digest)],
        properties=[Property(name="strata:nvr", value=facts.nvr)])


def make_sbom(facts: ImageFacts) -> bytes:
    """The CycloneDX 1.6 JSON document of ``facts`` (deterministic bytes)."""
    image = _image(facts)
    bom = Bom(serial_number=uuid.uuid5(uuid.NAMESPACE_URL, f"strata:sbom:{facts.digest}"),
              metadata=BomMetaData(component=image, timestamp=facts.created))
    parts: list[Component] = []
    for index, layer in enumerate(facts.layers):
        parts.append(Component(
            name=layer.digest, type=ComponentType.FILE,
            bom_ref=BomRef(f"layer:{index}:{layer.digest}"), hashes=[_sha256(layer.digest)],
            properties=[Property(name="oci:mediaType", value=layer.media_type),
                        Property(name="oci:size", value=str(layer.size)),
                        Property(name="oci:layerIndex", value=str(index))]))
    seen: set[str] = set()
    for package in sorted(facts.packages, key=lambda p: (p.name, p.version, p.arch, p.kind)):
        purl = _purl(package)
        ref = purl.to_string()
        if ref in seen:
            continue
        seen.add(ref)
        parts.append(Component(name=package.name, version=package.version or None,
                               type=ComponentType.LIBRARY, bom_ref=BomRef(ref), purl=purl))
    for part in parts:
        bom.components.add(part)
    bom.register_dependency(image, parts)
    text = make_outputter(bom, OutputFormat.JSON, SCHEMA).output_as_string(indent=None)
    return text.encode()


def validate_sbom(body: bytes) -> str | None:
    """The CycloneDX 1.6 schema's complaint about ``body``, or None when it is valid."""
    from cyclonedx.validation.json import JsonStrictValidator

    error = JsonStrictValidator(SCHEMA).validate_str(body.decode("utf-8"))
    return None if error is None else str(error)
