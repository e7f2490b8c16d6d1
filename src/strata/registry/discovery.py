"""Content discovery (distribution-spec "Listing Tags", "Listing Referrers", and the
``/v2/_catalog`` extension)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from strata.errors import Code, RegistryError
from strata.oci import mediatypes as mt
from strata.oci.digest import Digest
from strata.oci.names import RepositoryName
from strata.registry.limits import Limits
from strata.registry.ports import MetaStore


@dataclass(frozen=True, slots=True)
class Page:
    items: list[str]
    next_last: str | None  # set when there may be more: the ``last`` for the next page


@dataclass(frozen=True, slots=True)
class ReferrersPage:
    index: dict[str, Any]  # an OCI image index of the page's descriptors
    next_last: str | None  # the digest to continue after, when there may be more
    size: int  # the page size used (``n`` for the next page's link)


def parse_page_size(text: str | None, limits: Limits) -> int | None:
    if text is None or text == "":
        return None
    # ASCII digits only ("²".isdigit() is true, int("²") fails); a long one is just "many"
    # (int() refuses more than 4300 digits).
    if not (text.isascii() and text.isdigit()):
        raise RegistryError(Code.INVALID, f"n must be a non-negative integer, not {text[:50]!r}",
                            message="invalid pagination parameter")
    return min(int(text) if len(text) <= 18 else limits.max_page, limits.max_page)


class DiscoveryService:
    def __init__(self, meta: MetaStore, limits: Limits) -> None:
        self._meta = meta
        self._limits = limits

    async def ready(self) -> None:
        """One read of the metadata store (for health checks); raises what the store raises."""
        await self._meta.list_repositories(1, None)

    async def tags(self, repo: RepositoryName, n: int | None, last: str | None) -> Page:
        if n == 0:
            if not await self._meta.repository_exists(repo.value):
                raise RegistryError(Code.NAME_UNKNOWN, {"name": repo.value})
            return Page([], None)
        fetch = None if n is None else n + 1
        items = await self._meta.list_tags(repo.value, fetch, last)
        if items is None:
            raise RegistryError(Code.NAME_UNKNOWN, {"name": repo.value})
        return _page(items, n)

    async def repositories(self, n: int | None, last: str | None) -> Page:
        if n == 0:
            return Page([], None)
        fetch = None if n is None else n + 1
        return _page(await self._meta.list_repositories(fetch, last), n)

    async def referrers(self, repo: RepositoryName, subject: Digest, artifact_type: str | None,
                        n: int | None = None, last: str | None = None) -> ReferrersPage:
        """One page of the referrers of ``subject`` (``artifactType`` filtered), in digest
        order after ``last``: an OCI image index. Without ``n``, a page of the default size
        (``Limits.referrers_page``): 2,500 signatures on one image are not one answer."""
        size = self._limits.referrers_page if n is None else n
        if size == 0:
            return ReferrersPage(_index([]), None, size)
        if last is not None and last != "":
            last = str(Digest.parse(last))
        found = await self._meta.referrers(repo.value, str(subject), artifact_type=artifact_type,
                                           n=size + 1, last=last or None)
        more = len(found) > size
        found = found[:size]
        descriptors: list[dict[str, Any]] = []
        for rec in found:
            desc: dict[str, Any] = {"mediaType": rec.media_type, "digest": rec.digest,
                                    "size": rec.size}
            if rec.artifact_type:
                desc["artifactType"] = rec.artifact_type
            if rec.annotations:
                desc["annotations"] = rec.annotations
            descriptors.append(desc)
        return ReferrersPage(_index(descriptors), found[-1].digest if more else None, size)


def _index(descriptors: list[dict[str, Any]]) -> dict[str, Any]:
    return {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": descriptors}


def _page(items: list[str], n: int | None) -> Page:
    if n is not None and len(items) > n:
        items = items[:n]
        return Page(items, items[-1])
    return Page(items, None)
