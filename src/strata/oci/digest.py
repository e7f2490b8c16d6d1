"""Content digests (OCI image-spec, "Digests"): ``algorithm ":" encoded``.

Only sha256 and sha512 are accepted for content; their encodings are lower-case hex of the
exact length. Anything else is ``DIGEST_INVALID``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from strata.errors import Code, RegistryError

_GRAMMAR = re.compile(r"^([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$")
_HEX_LENGTH = {"sha256": 64, "sha512": 128}
_HEX = re.compile(r"^[a-f0-9]+$")


@dataclass(frozen=True, slots=True)
class Digest:
    algorithm: str
    encoded: str

    @classmethod
    def parse(cls, text: str) -> Digest:
        m = _GRAMMAR.fullmatch(text)
        if m is None:
            raise RegistryError(Code.DIGEST_INVALID, f"malformed digest {text[:200]!r}",
                                message="invalid digest")
        algorithm, encoded = m.group(1), m.group(2)
        length = _HEX_LENGTH.get(algorithm)
        if length is None:
            raise RegistryError(Code.DIGEST_INVALID, f"unsupported digest algorithm {algorithm!r}",
                                message="unsupported digest algorithm")
        if len(encoded) != length or not _HEX.fullmatch(encoded):
            raise RegistryError(Code.DIGEST_INVALID, f"malformed {algorithm} digest {text[:200]!r}",
                                message="invalid digest")
        return cls(algorithm, encoded)

    @classmethod
    def is_valid(cls, text: str) -> bool:
        try:
            cls.parse(text)
        except RegistryError:
            return False
        return True

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        return cls(algorithm, hashlib.new(algorithm, data).hexdigest())

    def hasher(self) -> hashlib._Hash:
        return hashlib.new(self.algorithm)

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.encoded}"
