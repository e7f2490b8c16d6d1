"""Name-Version-Release identifiers of released images.

An image built from a Dockerfile carries the labels ``name`` (``f25/cockpit``), ``version``
(``130``) and ``release`` (``1.f25docker``).  Together they form its NVR,
``f25/cockpit-130-1.f25docker``, and the immutable tag ``130-1.f25docker``.

Validation rules (checked whenever an :class:`NVR` is constructed):

* ``name``: non-empty, no whitespace or control characters.  It may contain ``-`` and ``/``:
  :meth:`NVR.parse` splits ``name-version-release`` from the right.
* ``version`` and ``release``: non-empty, only ``[A-Za-z0-9._+~^]``.  In particular never ``-``
  (that is what makes ``version-release`` unambiguous) and never whitespace.

``~``, ``^`` and ``+`` are meaningful to rpm but cannot appear in an OCI tag
(``[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}``).  An NVR that must become tags has to pass the extra
check :meth:`NVR.check_tag_safe` (also done by :attr:`NVR.tag`): no ``~^+``, a valid OCI tag
for ``version-release`` (and therefore for ``version``), and a version other than ``latest``
(which would collide with the Name stream tag).

Ordering: ``<``, ``<=``, ``>`` and ``>=`` compare **only version and release**, with
:func:`~strata.release.rpmvercmp.evr_compare`.  Comparing NVRs of different names is
meaningless; the caller must make sure the names match (the stream planner does).  ``==`` and
``hash`` are the dataclass ones (all three fields, as strings), so ``1.0-1`` and ``1.00-1`` are
neither ``<`` nor ``>`` each other, nor ``==``: use :meth:`NVR.compare` for a three-way answer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from strata.release.rpmvercmp import evr_compare

__all__ = ["NVR", "InvalidNVR"]

_PIECE = re.compile(r"[A-Za-z0-9._+~^]+")
_OCI_TAG = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")
_NOT_TAG_SAFE = frozenset("~^+")
_NAME_STREAM_TAG = "latest"


class InvalidNVR(ValueError):
    """A name, version or release that cannot form a valid (or tag-safe) NVR."""


def _check_name(name: object) -> None:
    if not isinstance(name, str):
        raise InvalidNVR(f"name must be a string, not {type(name).__name__}")
    if not name:
        raise InvalidNVR("name is empty")
    if any(ch.isspace() or not ch.isprintable() for ch in name):
        raise InvalidNVR(f"name {name!r} contains whitespace or control characters")


def _check_piece(field: str, value: object) -> None:
    if not isinstance(value, str):
        raise InvalidNVR(f"{field} must be a string, not {type(value).__name__}")
    if not value:
        raise InvalidNVR(f"{field} is empty")
    if "-" in value:
        raise InvalidNVR(f"{field} {value!r} contains '-'")
    if any(ch.isspace() for ch in value):
        raise InvalidNVR(f"{field} {value!r} contains whitespace")
    if _PIECE.fullmatch(value) is None:
        raise InvalidNVR(f"{field} {value!r} may only contain letters, digits and '._+~^'")


@dataclass(frozen=True)
class NVR:
    """A validated ``name-version-release`` triple (see the module docstring for the rules)."""

    name: str
    version: str
    release: str

    def __post_init__(self) -> None:
        _check_name(self.name)
        _check_piece("version", self.version)
        _check_piece("release", self.release)

    @classmethod
    def parse(cls, text: str) -> NVR:
        """Parse ``name-version-release``; the name may itself contain ``-``."""
        parts = text.rsplit("-", 2)
        if len(parts) != 3:
            raise InvalidNVR(f"{text!r} is not of the form name-version-release")
        name, version, release = parts
        return cls(name, version, release)

    @classmethod
    def from_labels(cls, labels: Mapping[str, str]) -> NVR:
        """Build the NVR from an image's ``name``, ``version`` and ``release`` labels."""
        missing = [key for key in ("name", "version", "release") if key not in labels]
        if missing:
            raise InvalidNVR(f"missing label(s): {', '.join(missing)}")
        return cls(labels["name"], labels["version"], labels["release"])

    @property
    def version_release(self) -> str:
        """``version-release``, without checking that it is a valid tag."""
        return f"{self.version}-{self.release}"

    @property
    def tag(self) -> str:
        """The immutable Name-Version-Release tag, ``version-release``.

        Raises :class:`InvalidNVR` if the NVR is not tag-safe.
        """
        self.check_tag_safe()
        return self.version_release

    def tag_safety_problem(self) -> str | None:
        """Why this NVR cannot be turned into tags, or None if it can."""
        for field, value in (("version", self.version), ("release", self.release)):
            bad = sorted(set(value) & _NOT_TAG_SAFE)
            if bad:
                return f"{field} {value!r} contains {''.join(bad)!r}, not allowed in a tag"
        if self.version == _NAME_STREAM_TAG:
            return f"version {self.version!r} would collide with the Name stream tag"
        if _OCI_TAG.fullmatch(self.version_release) is None:
            return f"{self.version_release!r} is not a valid OCI tag"
        return None

    def is_tag_safe(self) -> bool:
        """Whether ``version`` and ``version-release`` are valid tags for the streams."""
        return self.tag_safety_problem() is None

    def check_tag_safe(self) -> None:
        """Raise :class:`InvalidNVR` unless :meth:`is_tag_safe`."""
        problem = self.tag_safety_problem()
        if problem is not None:
            raise InvalidNVR(f"{self}: {problem}")

    def compare(self, other: NVR) -> int:
        """Three-way rpm comparison of version then release (names are not compared)."""
        return evr_compare(self.version, self.release, other.version, other.release)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, NVR):
            return NotImplemented
        return self.compare(other) < 0

    def __le__(self, other: object) -> bool:
        if not isinstance(other, NVR):
            return NotImplemented
        return self.compare(other) <= 0

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, NVR):
            return NotImplemented
        return self.compare(other) > 0

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, NVR):
            return NotImplemented
        return self.compare(other) >= 0

    def __str__(self) -> str:
        return f"{self.name}-{self.version}-{self.release}"
