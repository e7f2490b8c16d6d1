"""Names, tags and digests are matched whole: a trailing newline is not a valid anything."""

from __future__ import annotations

import pytest

from strata.errors import Code, RegistryError
from strata.oci.digest import Digest
from strata.oci.names import ManifestRef, RepositoryName, is_tag

HEX = "a" * 64


@pytest.mark.parametrize("name", ["abc\n", "a/b\n", "ABC", "a//b", "a/../b", "-a", "a" * 256])
def test_invalid_names(name: str) -> None:
    with pytest.raises(RegistryError) as info:
        RepositoryName.parse(name)
    assert info.value.code is Code.NAME_INVALID
    assert not RepositoryName.is_valid(name)


@pytest.mark.parametrize("name", ["a", "f25/cockpit", "a-b__c.d/e--f", "a" * 255])
def test_valid_names(name: str) -> None:
    assert RepositoryName.parse(name).value == name


@pytest.mark.parametrize("text", [f"sha256:{HEX}\n", f"sha256:{HEX.upper()}", "sha256:abc",
                                  f"md5:{HEX}", f"sha512:{HEX}", f"sha256:{HEX}x"])
def test_invalid_digests(text: str) -> None:
    assert not Digest.is_valid(text)


def test_digest_round_trip() -> None:
    assert str(Digest.parse(f"sha256:{HEX}")) == f"sha256:{HEX}"
    assert Digest.of(b"{}").encoded.startswith("44136fa3")


def test_tags_and_references() -> None:
    assert is_tag("130-1.f25docker") and is_tag("latest") and not is_tag("latest\n")
    assert not is_tag(".hidden") and not is_tag("a" * 129)
    assert ManifestRef.parse("v1").tag == "v1"
    assert ManifestRef.parse(f"sha256:{HEX}").digest == Digest("sha256", HEX)
