"""Repository names and tags (OCI Distribution Spec v1.1, "Pulling manifests").

Repository name: ``[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*(\\/[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*)*``.
Tag: ``[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from strata.errors import Code, RegistryError
from strata.oci.digest import Digest

_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
NAME_PATTERN = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
TAG_PATTERN = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$")
MAX_NAME_LENGTH = 255


@dataclass(frozen=True, slots=True, order=True)
class RepositoryName:
    value: str

    @classmethod
    def parse(cls, text: str) -> RepositoryName:
        if len(text) > MAX_NAME_LENGTH or not NAME_PATTERN.fullmatch(text):
            raise RegistryError(Code.NAME_INVALID, {"name": text[:300]})
        return cls(text)

    @classmethod
    def is_valid(cls, text: str) -> bool:
        return len(text) <= MAX_NAME_LENGTH and NAME_PATTERN.fullmatch(text) is not None

    @property
    def namespace(self) -> str | None:
        head, sep, _ = self.value.rpartition("/")
        return head if sep else None

    def __str__(self) -> str:
        return self.value


def is_tag(text: str) -> bool:
    return TAG_PATTERN.fullmatch(text) is not None


def parse_tag(text: str) -> str:
    """A tag to write (``PUT``, ``?tag=``): ``TAG_INVALID`` (400) if it is not one."""
    if not is_tag(text):
        raise RegistryError(Code.TAG_INVALID, {"tag": text[:200]})
    return text


@dataclass(frozen=True, slots=True)
class ManifestRef:
    """The ``<reference>`` of a manifest URL: a tag or a digest."""

    tag: str | None = None
    digest: Digest | None = None

    @classmethod
    def parse(cls, text: str) -> ManifestRef:
        """The reference of a ``PUT``: a digest (``DIGEST_INVALID`` if malformed) or a tag to
        write (``TAG_INVALID``)."""
        if ":" in text:
            return cls(digest=Digest.parse(text))
        return cls(tag=parse_tag(text))

    @classmethod
    def lookup(cls, text: str) -> ManifestRef:
        """The reference of a ``GET``, ``HEAD`` or ``DELETE``: one that is neither a valid tag
        nor a valid digest names no manifest, ``MANIFEST_UNKNOWN`` (404), as the
        distribution-spec conformance suite expects."""
        try:
            return cls.parse(text)
        except RegistryError:
            raise RegistryError(Code.MANIFEST_UNKNOWN, {"reference": text[:200]}) from None

    def __str__(self) -> str:
        return str(self.digest) if self.digest is not None else str(self.tag)
