"""The search index behind the metadata seam (issue 15): full-text search over image documents
and "which builds contain package X (version Y)".

One interface, :class:`TextIndex`, two implementations over the same ``search_documents``
rows (:mod:`strata.meta.schema_search`, kept in step by :mod:`strata.meta.search_sql`):

* :class:`SqliteTextIndex`: the FTS5 external-content table ``search_fts`` (columns name,
  summary, labels, help), ranked with ``bm25`` weights 10/4/2/1;
* :class:`PostgresTextIndex`: the narrow ``search_fts_vectors`` rows (filters, name and the
  weighted ``tsvector``) and their GIN index, ranked with ``ts_rank`` (name A, summary B,
  labels C, help D).

Both put a name match first: the image whose name (or repository) is the query, then names
starting with its first word (shortest first), then the full-text rank, then the repository.
Every word is a prefix (``cock`` finds ``cockpit``); all words must match.
:class:`SearchStore` runs them through :meth:`~strata.meta.database.Database.fetch_all`
(inline on SQLite, a thread on PostgreSQL) and answers frozen values.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import sqlalchemy as sa

from strata.meta.database import CompiledSql, Database
from strata.meta.schema_release import candidates
from strata.meta.schema_search import search_build_texts, search_documents, search_packages

__all__ = ["ImageDocument", "ImageHit", "PackageHit", "PostgresTextIndex", "SearchStore",
           "SqliteTextIndex", "TextIndex", "TextSearch"]


@dataclass(frozen=True)
class TextSearch:
    """What a text search asks: ``words`` (lower-case letters and digits, each a prefix; none:
    every image, by repository), ``phrase`` (the whole query, for the name match), the
    filters, and the window of results."""

    words: tuple[str, ...]
    phrase: str
    namespace: str | None = None
    status: str | None = None
    eol: bool | None = None
    limit: int = 25
    offset: int = 0


@dataclass(frozen=True)
class ImageHit:
    repository: str
    namespace: str
    name: str
    status: str
    eol: bool
    summary: str
    nvr: str | None


@dataclass(frozen=True)
class ImageDocument:
    """What the index knows of one image (its newest live build's labels and help file)."""

    repository: str
    summary: str
    labels: dict[str, str]
    help: str | None
    nvr: str | None


@dataclass(frozen=True)
class PackageHit:
    """A build that contains the package, with the release it was in (None: pending)."""

    repository: str
    digest: str
    nvr: str
    status: str
    release: str | None
    package: str
    version: str
    arch: str


class TextIndex(Protocol):
    """A database's full-text search over ``search_documents``."""

    def query(self, search: TextSearch) -> tuple[CompiledSql, dict[str, Any]]:
        """The statement answering ``search`` (columns as :class:`ImageHit`) and its values."""
        ...


_COLUMNS = "d.repository, d.namespace, d.name, d.status, d.eol, d.summary, d.nvr"


def _filters(search: TextSearch) -> tuple[str, dict[str, Any]]:
    clauses, values = [], {}
    for column, value in (("namespace", search.namespace), ("status", search.status),
                          ("eol", search.eol)):
        if value is not None:
            clauses.append(f" AND d.{column} = :{column}")
            values[column] = value
    return "".join(clauses), values


def _name_first(search: TextSearch) -> tuple[str, dict[str, Any]]:
    return ("CASE WHEN d.name = :phrase OR d.repository = :phrase THEN 0 "
            "WHEN d.name LIKE :prefix THEN 1 ELSE 2 END",
            {"phrase": search.phrase, "prefix": search.words[0] + "%"})


class _Cached:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._cache: dict[str, CompiledSql] = {}

    def compiled(self, sql: str) -> CompiledSql:
        found = self._cache.get(sql)
        if found is None:
            found = self._cache[sql] = self._db.compiled(sa.text(sql))
        return found

    def browse(self, search: TextSearch) -> tuple[CompiledSql, dict[str, Any]]:
        where, values = _filters(search)
        sql = (f"SELECT {_COLUMNS} FROM search_documents AS d WHERE 1 = 1{where} "
               "ORDER BY d.repository LIMIT :limit OFFSET :offset")
        return self.compiled(sql), {**values, "limit": search.limit, "offset": search.offset}


class SqliteTextIndex(_Cached):
    """FTS5: ``search_fts MATCH '"w1"* "w2"*'``, ordered by name match, then ``bm25``."""

    def query(self, search: TextSearch) -> tuple[CompiledSql, dict[str, Any]]:
        if not search.words:
            return self.browse(search)
        where, values = _filters(search)
        first, more = _name_first(search)
        sql = (f"SELECT {_COLUMNS} FROM search_fts JOIN search_documents AS d "
               f"ON d.id = search_fts.rowid WHERE search_fts MATCH :match{where} "
               f"ORDER BY {first}, CASE WHEN d.name LIKE :prefix THEN length(d.name) ELSE 0 END, "
               "bm25(search_fts, 10.0, 4.0, 2.0, 1.0), d.repository "
               "LIMIT :limit OFFSET :offset")
        match = " ".join(f'"{w}"*' for w in search.words)
        return self.compiled(sql), {**values, **more, "match": match,
                                    "limit": search.limit, "offset": search.offset}


class PostgresTextIndex(_Cached):
    """``vector @@ to_tsquery('simple', 'w1:* & w2:*')`` on the GIN index of the narrow
    ``search_fts_vectors`` rows, ordered by name match, then ``ts_rank``; only the page's rows
    are then read from ``search_documents``."""

    def query(self, search: TextSearch) -> tuple[CompiledSql, dict[str, Any]]:
        if not search.words:
            return self.browse(search)
        where, values = _filters(search)
        first, more = _name_first(search)
        sql = (f"SELECT {_COLUMNS} FROM (SELECT d.id, {first} AS name_first, "
               "CASE WHEN d.name LIKE :prefix THEN length(d.name) ELSE 0 END AS name_length, "
               "ts_rank(d.vector, q) AS rank, d.repository FROM search_fts_vectors AS d, "
               f"to_tsquery('simple', :match) AS q WHERE d.vector @@ q{where} "
               "ORDER BY 2, 3, 4 DESC, 5 LIMIT :limit OFFSET :offset) AS top "
               "JOIN search_documents AS d ON d.id = top.id "
               "ORDER BY top.name_first, top.name_length, top.rank DESC, top.repository")
        match = " & ".join(f"{w}:*" for w in search.words)
        return self.compiled(sql), {**values, **more, "match": match,
                                    "limit": search.limit, "offset": search.offset}


def _packages_query(*, version: bool, namespace: bool, after: bool,
                    scoped: bool) -> sa.Select[Any]:
    """The page of package rows in key order (an index range that stops at ``limit``; a
    withdrawn build has no rows left), then each row's build."""
    p, c = search_packages.c, candidates.c
    where = [p.name == sa.bindparam("package")]
    if version:  # exactly, or as the upstream part of "version-release"
        where.append(sa.or_(p.version == sa.bindparam("version"), sa.and_(
            p.version >= sa.bindparam("version_low"), p.version < sa.bindparam("version_high"))))
    if namespace:
        where.append(p.repository.like(sa.bindparam("namespace_prefix"), escape="\\"))
    if scoped:
        where.append(p.repository.in_(sa.bindparam("repositories", expanding=True)))
    if after:
        where.append(sa.tuple_(p.repository, p.digest, p.version, p.arch) > sa.tuple_(
            sa.bindparam("a_repository"), sa.bindparam("a_digest"),
            sa.bindparam("a_version"), sa.bindparam("a_arch")))
    page = (sa.select(p.repository, p.digest, p.name, p.version, p.arch).where(*where)
            .order_by(p.repository, p.digest, p.version, p.arch)
            .limit(sa.bindparam("limit")).subquery("page"))
    return (sa.select(page.c.repository, page.c.digest, c.name, c.version, c.release, c.status,
                      c.release_name, page.c.name, page.c.version, page.c.arch)
            .select_from(page.outerjoin(candidates, sa.and_(
                c.repository == page.c.repository, c.digest == page.c.digest)))
            .order_by(page.c.repository, page.c.digest, page.c.version, page.c.arch))


def _like_escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _document_query() -> sa.Select[Any]:
    d = search_documents.c
    return sa.select(d.repository, d.summary, d.nvr).where(d.repository == sa.bindparam("r"))


def _texts_query() -> sa.Select[Any]:
    b, t = candidates.c, search_build_texts.c
    return (sa.select(t.labels, t.help)
            .select_from(candidates.join(search_build_texts, sa.and_(
                t.repository == b.repository, t.digest == b.digest)))
            .where(b.repository == sa.bindparam("r"),
                   sa.or_(b.status == "candidate", b.status == "released"))
            .order_by(b.id.desc()).limit(1))


class SearchStore:
    """Search reads on a :class:`Database`: the dialect's :class:`TextIndex`, package rows."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.index: TextIndex = (PostgresTextIndex(db) if db.dialect == "postgresql"
                                 else SqliteTextIndex(db))
        self._packages: dict[tuple[bool, bool, bool, bool], CompiledSql] = {}

    async def images(self, search: TextSearch) -> list[ImageHit]:
        query, values = self.index.query(search)
        rows = await self.db.fetch_all(query, values)
        return [ImageHit(r[0], r[1], r[2], r[3], bool(r[4]), r[5], r[6]) for r in rows]

    async def packages(self, package: str, *, version: str | None = None,
                       namespace: str | None = None,
                       after: Sequence[str] | None = None,
                       repositories: Sequence[str] | None = None,
                       limit: int = 25) -> list[PackageHit]:
        """Builds whose package list has ``package`` (at ``version``: exactly, or
        ``version-*``), in (repository, digest, version, arch) order after ``after``; with
        ``repositories``, only of those. Withdrawn builds have no package rows left."""
        if repositories is not None and not repositories:
            return []
        key = (version is not None, namespace is not None, after is not None,
               repositories is not None)
        values: dict[str, Any] = {"package": package, "limit": limit}
        if version is not None:
            values.update(version=version, version_low=version + "-",
                          version_high=version + ".")  # '.' sorts right after '-'
        if namespace is not None:
            values["namespace_prefix"] = _like_escaped(namespace) + "/%"
        if after is not None:
            values.update(a_repository=after[0], a_digest=after[1], a_version=after[2],
                          a_arch=after[3])
        if repositories is not None:  # an expanding list: through the expression layer
            stmt = _packages_query(version=key[0], namespace=key[1], after=key[2], scoped=True)
            values["repositories"] = list(repositories)
            rows = await self.db.read(
                lambda conn: [tuple(r) for r in conn.execute(stmt, values)])
        else:
            query = self._packages.get(key)
            if query is None:
                query = self._packages[key] = self.db.compiled(_packages_query(
                    version=key[0], namespace=key[1], after=key[2], scoped=False))
            rows = await self.db.fetch_all(query, values)
        return [PackageHit(r[0], r[1], f"{r[2]}-{r[3]}-{r[4]}" if r[2] is not None else "",
                           r[5] or "unknown", r[6], r[7], r[8], r[9]) for r in rows]

    async def document(self, repository: str) -> ImageDocument | None:
        """The indexed summary, labels and help file of an image (None: not indexed)."""
        row = await self.db.fetch_one(self.db.prepared(_document_query), {"r": repository})
        if row is None:
            return None
        texts = await self.db.fetch_one(self.db.prepared(_texts_query), {"r": repository})
        labels = json.loads(texts[0]) if texts is not None and texts[0] else {}
        return ImageDocument(row[0], row[1], labels, None if texts is None else texts[1],
                             row[2])
