"""Search (issue 15): what people ask -- words, filters, a package -- parsed at the edge into
frozen queries, answered from the index behind the metadata seam
(:class:`strata.meta.search_store.SearchStore`) in pages.

* :class:`ImageQuery` (``GET /api/v1/search``, ``/v1/search``, ``strata search TERM``): words
  over image names, summaries, labels and help files (every word must match, each as a
  prefix), filtered by namespace, status (``in-review``, ``active``, ``retired``) and EOL
  (every stream ended). Ranked: name match first, then the database's full-text rank.
* :class:`PackageQuery` (``GET /api/v1/search/packages``, ``strata search --package
  NAME[=VER]``): the builds whose recorded package list has the package (at that version:
  exactly, or as ``VER-release``), with the release each was in; optionally only images whose
  text matches ``q``.

Every input is bounded; a bad one is ``INVALID`` (400) with what was wrong. Pages carry an
opaque ``next`` cursor, asked back as ``last`` (an offset for ranked results, a keyset for
packages).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from strata.errors import Code, RegistryError
from strata.meta.search_sql import MAX_HELP
from strata.meta.search_store import ImageHit, PackageHit, SearchStore, TextSearch

__all__ = ["MAX_HELP", "ImagePage", "ImageQuery", "PackagePage", "PackageQuery", "Search",
           "Visible", "invalid"]

MAX_QUERY = 256
MAX_WORDS = 8
MAX_WORD = 64
DEFAULT_N = 25
MAX_N = 100
#: The deepest a ranked result list can be paged (n at a time).
MAX_OFFSET = 10_000
#: How many images a package search narrowed by ``q`` looks among.
MAX_TEXT_SCOPE = 1000
STATUSES = ("in-review", "active", "retired")
_NAMESPACE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_WORD = re.compile(r"[^\W_]+")
_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def invalid(message: str, detail: Any = None) -> RegistryError:
    return RegistryError(Code.INVALID, detail, message=message)


def _text(params: Mapping[str, str], key: str, limit: int) -> str | None:
    value = params.get(key)
    if value is None or value.strip() == "":
        return None
    if len(value) > limit:
        raise invalid(f"{key} is longer than {limit} characters", {key: value[:40]})
    if any(ord(ch) < 32 for ch in value):
        raise invalid(f"{key} has control characters")
    return value.strip()


def _count(params: Mapping[str, str]) -> int:
    value = params.get("n")
    if value is None or value == "":
        return DEFAULT_N
    if not (value.isascii() and value.isdigit()) or len(value) > 6 or \
            not 1 <= int(value) <= MAX_N:
        raise invalid(f"n must be an integer from 1 to {MAX_N}", {"n": value[:40]})
    return int(value)


def _namespace(params: Mapping[str, str]) -> str | None:
    value = _text(params, "namespace", 64)
    if value is not None and not _NAMESPACE.fullmatch(value):
        raise invalid(f"{value!r} is not a namespace name")
    return value


def _cursor(params: Mapping[str, str]) -> Any:
    value = params.get("last")
    if not value:
        return None
    if len(value) > 1024:
        raise invalid("cursor is too long")
    try:
        return json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
    except (binascii.Error, ValueError):
        raise invalid("cursor is not one this server gave") from None


def _encode(value: Any) -> str:
    raw = json.dumps(value, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def words_of(text: str | None) -> tuple[str, ...]:
    """The words of a query: runs of letters and digits, lower-cased, at most ``MAX_WORDS``
    of at most ``MAX_WORD`` characters."""
    words = tuple(dict.fromkeys(w.lower() for w in _WORD.findall(text or "")))
    if len(words) > MAX_WORDS:
        raise invalid(f"a query has at most {MAX_WORDS} words")
    if any(len(w) > MAX_WORD for w in words):
        raise invalid(f"a word has at most {MAX_WORD} characters")
    return words


@dataclass(frozen=True)
class ImageQuery:
    text: str | None
    words: tuple[str, ...]
    namespace: str | None = None
    status: str | None = None
    eol: bool | None = None
    n: int = DEFAULT_N
    offset: int = 0

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> ImageQuery:
        """From ``q``, ``namespace``, ``status``, ``eol``, ``n`` and ``last`` (the cursor)."""
        text = _text(params, "q", MAX_QUERY)
        words = words_of(text)
        if text is not None and not words:
            raise invalid("q has no word to search for (letters or digits)")
        status = _text(params, "status", 16)
        if status is not None and status not in STATUSES:
            raise invalid(f"status must be one of {', '.join(STATUSES)}", {"status": status})
        eol_text = params.get("eol")
        eol = None
        if eol_text not in (None, ""):
            if eol_text.lower() not in _BOOLEANS:
                raise invalid("eol must be true or false", {"eol": eol_text[:40]})
            eol = _BOOLEANS[eol_text.lower()]
        cursor = _cursor(params)
        offset = 0
        if cursor is not None:
            if not isinstance(cursor, dict) or not isinstance(cursor.get("o"), int) or \
                    isinstance(cursor.get("o"), bool) or not 0 <= cursor["o"] <= MAX_OFFSET:
                raise invalid("cursor is not one this server gave")
            offset = cursor["o"]
        return cls(text, words, _namespace(params), status, eol, _count(params), offset)

    def to_json(self) -> dict[str, Any]:
        return {"q": self.text, "namespace": self.namespace, "status": self.status,
                "eol": self.eol, "n": self.n}


@dataclass(frozen=True)
class PackageQuery:
    name: str
    version: str | None = None
    namespace: str | None = None
    text: str | None = None
    words: tuple[str, ...] = ()
    n: int = DEFAULT_N
    after: tuple[str, str, str, str] | None = None

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> PackageQuery:
        """From ``name`` (or ``NAME=VERSION``), ``version``, ``namespace``, ``q``, ``n`` and
        ``last`` (the cursor)."""
        name = _text(params, "name", 255)
        if name is None:
            raise invalid("name (the package) is required")
        version = _text(params, "version", 255)
        if "=" in name:
            name, _, version = name.partition("=")
            if not name or not version:
                raise invalid("a package is NAME or NAME=VERSION")
        text = _text(params, "q", MAX_QUERY)
        words = words_of(text)
        if text is not None and not words:
            raise invalid("q has no word to search for (letters or digits)")
        cursor = _cursor(params)
        after = None
        if cursor is not None:
            if not isinstance(cursor, list) or len(cursor) != 4 or \
                    not all(isinstance(v, str) and len(v) <= 255 for v in cursor):
                raise invalid("cursor is not one this server gave")
            after = (cursor[0], cursor[1], cursor[2], cursor[3])
        return cls(name, version, _namespace(params), text, words, _count(params), after)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "namespace": self.namespace,
                "q": self.text, "n": self.n}


def image_json(hit: ImageHit) -> dict[str, Any]:
    return {"repository": hit.repository, "namespace": hit.namespace, "name": hit.name,
            "status": hit.status, "eol": hit.eol, "summary": hit.summary, "nvr": hit.nvr}


def package_json(hit: PackageHit) -> dict[str, Any]:
    return {"repository": hit.repository, "digest": hit.digest, "nvr": hit.nvr,
            "status": hit.status, "release": hit.release,
            "package": {"name": hit.package, "version": hit.version, "arch": hit.arch}}


@dataclass(frozen=True)
class ImagePage:
    query: ImageQuery
    results: tuple[ImageHit, ...]
    next: str | None

    def to_json(self) -> dict[str, Any]:
        return {"query": self.query.to_json(), "results": [image_json(h) for h in self.results],
                "next": self.next}


@dataclass(frozen=True)
class PackagePage:
    query: PackageQuery
    results: tuple[PackageHit, ...]
    next: str | None

    def to_json(self) -> dict[str, Any]:
        return {"query": self.query.to_json(),
                "results": [package_json(h) for h in self.results], "next": self.next}


Visible = Callable[[str], bool]
"""Whether the asker may see a repository (its pull right); None: every repository."""

#: Rows a filtered search reads per step, and at most how many steps one page takes.
_BATCH = 200
_STEPS = 20


class Search:
    """The search use-cases over a :class:`SearchStore`. With ``visible``, only repositories
    the asker may pull are answered (the registry's own pull rule: private namespaces stay
    private on every path); pages then skip what is hidden, so a page may take several reads
    and its cursor points past the rows it looked at."""

    def __init__(self, store: SearchStore) -> None:
        self.store = store

    def _text(self, query: ImageQuery, limit: int, offset: int) -> TextSearch:
        return TextSearch(query.words, (query.text or "").lower(), query.namespace,
                          query.status, query.eol, limit=limit, offset=offset)

    async def images(self, query: ImageQuery, visible: Visible | None = None) -> ImagePage:
        if visible is None:
            hits = await self.store.images(self._text(query, query.n + 1, query.offset))
            more = len(hits) > query.n and query.offset + query.n <= MAX_OFFSET
            return ImagePage(query, tuple(hits[:query.n]),
                             _encode({"o": query.offset + query.n}) if more else None)
        found: list[ImageHit] = []
        offset = query.offset
        for _ in range(_STEPS):
            hits = await self.store.images(self._text(query, _BATCH, offset))
            for at, hit in enumerate(hits):
                if not visible(hit.repository):
                    continue
                if len(found) == query.n:  # one more exists: the next page starts here
                    return ImagePage(query, tuple(found), _encode({"o": offset + at})
                                     if offset + at <= MAX_OFFSET else None)
                found.append(hit)
            offset += len(hits)
            if len(hits) < _BATCH or offset > MAX_OFFSET:
                break
        else:
            return ImagePage(query, tuple(found), _encode({"o": offset}))
        return ImagePage(query, tuple(found), None)

    async def packages(self, query: PackageQuery,
                       visible: Visible | None = None) -> PackagePage:
        repositories = None
        if query.words:
            scope = await self.store.images(TextSearch(
                query.words, (query.text or "").lower(), query.namespace,
                limit=MAX_TEXT_SCOPE))
            repositories = tuple(hit.repository for hit in scope)
        found: list[PackageHit] = []
        after = query.after
        for _ in range(_STEPS if visible is not None else 1):
            batch = query.n + 1 if visible is None else _BATCH
            hits = await self.store.packages(
                query.name, version=query.version, namespace=query.namespace, after=after,
                repositories=repositories, limit=batch)
            for hit in hits:
                if visible is not None and not visible(hit.repository):
                    after = _key(hit)
                    continue
                if len(found) == query.n:
                    return PackagePage(query, tuple(found), _encode(list(after or ())))
                found.append(hit)
                after = _key(hit)
            if len(hits) < batch:
                return PackagePage(query, tuple(found), None)
        return PackagePage(query, tuple(found), _encode(list(after or ())))


def _key(hit: PackageHit) -> tuple[str, str, str, str]:
    return (hit.repository, hit.digest, hit.version, hit.arch)
