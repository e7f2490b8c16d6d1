"""The rebuild loop's values and rules (pure: no SQL, no HTTP).

Every registered build may say what it was built from (:class:`BuildInputs`, sent with
``POST /api/v1/candidates`` by ``strata build``): its source (URL and commit), its base (the
repository and stream tag its ``FROM`` named, and the digest that tag pointed to) and the OS
packages of the result (the list, and its digest: :func:`packages_digest`). From these:

* an image is *stale* when the stream tag its latest build was built on now points to another
  digest (:class:`StaleImage`);
* a rebuild is *unchanged* -- and dropped instead of registered -- when its source commit,
  base digest and package list are those of the repository's current candidate or current
  release (:func:`unchanged_against`);
* the release notes of a build name the base change (old -> new base NVR and digest) and every
  package whose version changed (:func:`rebuild_note`).

Values parsed from a request body are checked here (:func:`parse_inputs`); a malformed one
raises :class:`InvalidInputs` (a ``ValueError``) with the reason.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from strata.errors import RegistryError
from strata.oci.digest import Digest
from strata.oci.names import RepositoryName, is_tag

__all__ = ["BaseChange", "BuildInputs", "InvalidInputs", "Package", "PackageChange",
           "StaleImage", "package_changes", "packages_digest", "parse_inputs", "rebuild_note",
           "unchanged_against"]

#: Most packages a build may list (a full Fedora image has ~200-2000).
MAX_PACKAGES = 20_000
_FIELD_MAX = 256
_COMMIT = re.compile(r"^[0-9a-f]{7,64}$")


class InvalidInputs(ValueError):
    """A build's inputs, as sent, cannot be used (the message says why)."""


@dataclass(frozen=True, order=True)
class Package:
    name: str
    version: str
    arch: str = ""

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version, "arch": self.arch}


def packages_digest(packages: Iterable[Package]) -> str:
    """The digest of a package list: sha256 of its canonical JSON, order-independent."""
    canonical = json.dumps([[p.name, p.version, p.arch] for p in sorted(set(packages))],
                           separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class BuildInputs:
    """What one registered build was built from, and the packages it contains."""

    source_url: str | None = None
    source_commit: str | None = None
    base_repository: str | None = None
    base_tag: str | None = None
    base_digest: str | None = None
    packages: tuple[Package, ...] = ()
    packages_digest: str | None = None
    record_digest: str | None = None  # the build record referrer the build pushed

    @property
    def has_stream(self) -> bool:
        """Whether the build followed a base stream tag (a base release can make it stale)."""
        return self.base_repository is not None and self.base_tag is not None

    def same_result(self, other: BuildInputs) -> bool:
        """Same source commit, base digest and package list (a known commit is needed: two
        builds of a directory cannot be told apart)."""
        return (self.source_commit is not None
                and self.source_commit == other.source_commit
                and self.base_digest == other.base_digest
                and self.packages_digest == other.packages_digest)

    def to_json(self) -> dict[str, Any]:
        return {"source": {"url": self.source_url, "commit": self.source_commit},
                "base": None if self.base_repository is None and self.base_digest is None else {
                    "repository": self.base_repository, "tag": self.base_tag,
                    "digest": self.base_digest},
                "packages_digest": self.packages_digest,
                "packages": len(self.packages), "record": self.record_digest}


def _text(data: Mapping[str, Any], key: str, where: str) -> str | None:
    value = data.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > _FIELD_MAX:
        raise InvalidInputs(f"{where}.{key} must be a string of at most {_FIELD_MAX} "
                            "characters")
    return value


def _object(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInputs(f"{key} must be an object")
    return value


def _packages(value: Any) -> tuple[Package, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise InvalidInputs("packages must be a list of {name, version, arch}")
    if len(value) > MAX_PACKAGES:
        raise InvalidInputs(f"packages: at most {MAX_PACKAGES} entries, got {len(value)}")
    out = []
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise InvalidInputs(f"packages[{index}] must be an object")
        name = _text(item, "name", f"packages[{index}]")
        if name is None:
            raise InvalidInputs(f"packages[{index}].name is missing")
        out.append(Package(name, _text(item, "version", f"packages[{index}]") or "",
                           _text(item, "arch", f"packages[{index}]") or ""))
    return tuple(sorted(set(out)))


def parse_inputs(data: Mapping[str, Any]) -> BuildInputs | None:
    """The inputs of a ``POST /api/v1/candidates`` body (``source``: {url, commit};
    ``base``: {repository, tag, digest}; ``packages``: [{name, version, arch}]; ``record``:
    the digest of the build record referrer it pushed), or None when it says none of them."""
    source, base = _object(data, "source"), _object(data, "base")
    record = data.get("record")
    if not source and not base and data.get("packages") is None and record is None:
        return None
    if record is not None:
        try:
            record = str(Digest.parse(record)) if isinstance(record, str) else None
        except RegistryError:
            record = None
        if record is None:
            raise InvalidInputs("record must be the digest of the build record manifest")
    commit = _text(source, "commit", "source")
    if commit is not None and not _COMMIT.match(commit):
        raise InvalidInputs(f"source.commit {commit[:80]!r} is not a git commit id")
    repository = _text(base, "repository", "base")
    if repository is not None and not RepositoryName.is_valid(repository):
        raise InvalidInputs(f"base.repository {repository[:80]!r} is not a repository name")
    tag = _text(base, "tag", "base")
    if tag is not None and (repository is None or not is_tag(tag)):
        raise InvalidInputs(f"base.tag {tag[:80]!r} needs base.repository and must be a tag")
    digest = _text(base, "digest", "base")
    if digest is not None:
        try:
            digest = str(Digest.parse(digest))
        except RegistryError:
            raise InvalidInputs(f"base.digest {digest[:80]!r} is not a digest") from None
    packages = _packages(data.get("packages"))
    return BuildInputs(_text(source, "url", "source"), commit, repository, tag, digest,
                       packages, packages_digest(packages), record)


# -- unchanged rebuilds ------------------------------------------------------------------------
@dataclass(frozen=True)
class Reference:
    """A registered build the rules compare against (its NVR and digest, with its inputs)."""

    nvr: str
    digest: str
    status: str
    inputs: BuildInputs


def unchanged_against(inputs: BuildInputs, current: Sequence[Reference]) -> Reference | None:
    """The current candidate or release whose result ``inputs`` repeats, or None."""
    for ref in current:
        if inputs.same_result(ref.inputs):
            return ref
    return None


# -- stale images ------------------------------------------------------------------------------
@dataclass(frozen=True)
class StaleImage:
    """An image whose latest build's base stream tag has moved since."""

    repository: str
    nvr: str
    digest: str
    base_repository: str
    base_tag: str
    built_on: str
    built_on_nvr: str | None
    now: str | None
    now_nvr: str | None

    def to_json(self) -> dict[str, Any]:
        return {"repository": self.repository, "nvr": self.nvr, "digest": self.digest,
                "base": {"repository": self.base_repository, "tag": self.base_tag,
                         "built_on": self.built_on, "built_on_nvr": self.built_on_nvr,
                         "now": self.now, "now_nvr": self.now_nvr}}


# -- release notes -----------------------------------------------------------------------------
@dataclass(frozen=True)
class BaseChange:
    repository: str
    tag: str | None
    old_digest: str | None
    new_digest: str
    old_nvr: str | None
    new_nvr: str | None

    def to_json(self) -> dict[str, Any]:
        return {"repository": self.repository, "tag": self.tag, "old_digest": self.old_digest,
                "new_digest": self.new_digest, "old_nvr": self.old_nvr,
                "new_nvr": self.new_nvr}


@dataclass(frozen=True)
class PackageChange:
    name: str
    arch: str
    old: str | None  # None: added
    new: str | None  # None: removed

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "arch": self.arch, "old": self.old, "new": self.new}


def package_changes(old: Iterable[Package], new: Iterable[Package]) -> list[PackageChange]:
    """Every package (by name and arch) whose version differs, was added or was removed."""
    before: dict[tuple[str, str], set[str]] = {}
    after: dict[tuple[str, str], set[str]] = {}
    for package in old:
        before.setdefault((package.name, package.arch), set()).add(package.version)
    for package in new:
        after.setdefault((package.name, package.arch), set()).add(package.version)
    changes = []
    for key in sorted(before.keys() | after.keys()):
        was, now = before.get(key, set()), after.get(key, set())
        if was == now:
            continue
        changes.append(PackageChange(key[0], key[1], ", ".join(sorted(was)) or None,
                                     ", ".join(sorted(now)) or None))
    return changes


def rebuild_note(previous: BuildInputs | None, current: BuildInputs,
                 nvr_of_base: Mapping[str, str]) -> dict[str, Any] | None:
    """What the notes say about a build against the build its stream had before: the base
    change (``nvr_of_base``: registered NVRs of base digests) and the package changes; None
    when neither changed or nothing is known of the previous build."""
    if previous is None:
        return None
    base = None
    if current.base_digest is not None and current.base_digest != previous.base_digest:
        base = BaseChange(current.base_repository or previous.base_repository or "",
                          current.base_tag, previous.base_digest, current.base_digest,
                          nvr_of_base.get(previous.base_digest or ""),
                          nvr_of_base.get(current.base_digest))
    packages = ([] if previous.packages_digest == current.packages_digest
                else package_changes(previous.packages, current.packages))
    if base is None and not packages:
        return None
    return {"base": None if base is None else base.to_json(),
            "packages": [p.to_json() for p in packages],
            "source_changed": previous.source_commit != current.source_commit}
