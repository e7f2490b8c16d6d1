"""parse_manifest: the cap on references, and the quick descriptor check agreeing with the
JSON Schema it stands in for."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strata.errors import Code, RegistryError
from strata.oci import schemas
from strata.oci.manifest import _plain_descriptor, parse_manifest
from strata.oci.mediatypes import OCI_INDEX, OCI_MANIFEST

D = "sha256:" + "a" * 64
LAYER = {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": D, "size": 1}
CONFIG = {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": D, "size": 2}


def image(layers: int) -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": CONFIG,
                       "layers": [LAYER] * layers}).encode()


def index(children: int) -> bytes:
    child = {**LAYER, "mediaType": OCI_MANIFEST,
             "platform": {"architecture": "amd64", "os": "linux"}}
    return json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX,
                       "manifests": [child] * children}).encode()


@pytest.mark.parametrize(("body", "kind"), [(image, "layers"), (index, "manifests")])
def test_more_references_than_the_cap_are_refused_naming_it(body: Any, kind: str) -> None:
    assert len(parse_manifest(body(100), None, max_references=100).blobs
               or parse_manifest(body(100), None, max_references=100).children) >= 100
    with pytest.raises(RegistryError) as info:
        parse_manifest(body(101), None, max_references=100)
    assert info.value.code is Code.MANIFEST_INVALID
    assert f"101 {kind}" in info.value.message and "at most 100 references" in info.value.message


def test_the_cap_is_decided_before_descriptors_are_checked(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """27,000 layers (3.9 MiB) are refused without looking at one descriptor (checking them
    with the schema took 1.3 s here)."""
    from strata.oci import manifest

    looked: list[Any] = []
    monkeypatch.setattr(manifest, "_plain_descriptor", lambda obj: looked.append(obj) or True)
    with pytest.raises(RegistryError):
        parse_manifest(image(27_000), None, max_references=10_000)
    assert looked == []


def test_ordinary_descriptors_skip_the_schema_validator(monkeypatch: pytest.MonkeyPatch) -> None:
    """10,000 layers: the per-descriptor schema validator (~50 µs each) is never run."""
    from strata.oci import manifest

    class Counting:
        calls = 0

        def iter_errors(self, obj: Any) -> Any:
            Counting.calls += 1
            return _VALIDATOR.iter_errors(obj)

    monkeypatch.setattr(manifest, "_DESCRIPTOR_VALIDATOR", Counting())
    parsed = parse_manifest(image(10_000), None, max_references=10_000)
    assert len(parsed.blobs) == 10_001 and Counting.calls == 0
    doc = json.loads(image(3))
    doc["layers"][1]["size"] = 1.0  # integral float: the quick check defers to the schema
    assert len(parse_manifest(json.dumps(doc).encode(), None).blobs) == 4
    assert Counting.calls == 1


def test_an_invalid_listed_descriptor_names_its_place() -> None:
    doc = json.loads(image(3))
    doc["layers"][2]["size"] = -1
    with pytest.raises(RegistryError) as info:
        parse_manifest(json.dumps(doc).encode(), None)
    assert "layers/2/size" in str(info.value.detail)
    doc["layers"][2] = "nope"
    with pytest.raises(RegistryError) as info:
        parse_manifest(json.dumps(doc).encode(), None)
    assert "layers/2" in str(info.value.detail)


_VALIDATOR = jsonschema.Draft202012Validator(schemas.DESCRIPTOR)
_json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-2, 2 ** 40), st.floats(-1, 1e6),
                       st.sampled_from(["", "a/b", "application/vnd.x+json", "x", "a/b\n",
                                        "sha256:" + "0" * 64, "linux"]))
_json = st.recursive(_json_leaf, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(
        ["architecture", "os", "variant", "os.version", "os.features", "features", "k"]),
        inner, max_size=4)), max_leaves=8)
_descriptor = st.fixed_dictionaries(
    {}, optional={"mediaType": _json, "digest": _json, "size": _json, "urls": _json,
                  "annotations": _json, "artifactType": _json, "data": _json,
                  "platform": _json, "extra": _json})


@settings(max_examples=400, deadline=None)
@given(st.one_of(_descriptor, st.builds(lambda d: {**LAYER, **d}, _descriptor), _json))
def test_the_quick_check_accepts_only_what_the_schema_accepts(obj: Any) -> None:
    if _plain_descriptor(obj):
        assert _VALIDATOR.is_valid(obj), obj


@pytest.mark.parametrize("obj", [
    LAYER, {**LAYER, "urls": ["http://x"], "annotations": {"a": "b"}, "data": "",
            "artifactType": "a/b", "x-other": [1]},
    {**LAYER, "platform": {"architecture": "arm64", "os": "linux", "variant": "v8",
                           "os.features": ["a"], "features": [], "os.version": "1"}},
])
def test_the_quick_check_accepts_ordinary_descriptors(obj: Any) -> None:
    assert _plain_descriptor(obj) and _VALIDATOR.is_valid(obj)
