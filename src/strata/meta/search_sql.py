"""The search index's writes (issue 15), run inside the caller's write transaction.

* :func:`refresh`: rewrite an image's search document (``search_documents``) from the rows it
  is made of -- the image (name, namespace, status, summary), its newest live build (NVR and
  that build's texts: labels and help file) and its streams (EOL). Each database's full-text
  index follows the document by trigger (migration ``0013``). The stores call it in every
  write that changes one of those rows: image added or edited (``strata image add|set``,
  submit, approve, forced registration, base import), build registered, withdrawn or
  released, stream ended.
* :func:`record_texts`: the labels (read from the image's config by the server) and the help
  file (sent by ``strata build``) of a registered build.
* :func:`record_packages`: a build's package rows (``search_packages``), written with its
  recorded inputs (:func:`strata.meta.rebuild_store.record_inputs`);
  :func:`forget_packages` removes them when the build is withdrawn.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

import sqlalchemy as sa

from strata.meta.conflicts import insert_new
from strata.meta.schema_release import candidates, images, streams
from strata.meta.schema_search import search_build_texts, search_documents, search_packages

__all__ = ["MAX_HELP", "forget_packages", "labels_text", "record_packages", "record_texts",
           "refresh"]

#: Longest help file kept for search, in characters (the rest is cut).
MAX_HELP = 64 * 1024
_LIVE = ("candidate", "released")


def labels_text(labels: Mapping[str, str]) -> str:
    """Labels as the text the index reads: one ``key=value`` a line, sorted."""
    return "\n".join(f"{k}={v}" for k, v in sorted(labels.items()))


def record_texts(conn: sa.Connection, repository: str, digest: str,
                 labels: Mapping[str, str] | None, help_text: str | None) -> None:
    """Keep what build ``repository@digest`` says of itself (first registration wins)."""
    conn.execute(insert_new(search_build_texts).values(
        repository=repository, digest=digest,
        labels=json.dumps(dict(labels or {}), sort_keys=True),
        help=None if help_text is None else help_text[:MAX_HELP]))


def record_packages(conn: sa.Connection, repository: str, digest: str,
                    packages: Iterable[tuple[str, str, str]]) -> None:
    """The package rows of build ``repository@digest`` (name, version, arch)."""
    rows = [{"name": n[:255], "repository": repository, "digest": digest,
             "version": v[:255], "arch": a[:64]}
            for n, v, a in sorted({(str(n), str(v), str(a)) for n, v, a in packages})]
    if rows:
        conn.execute(insert_new(search_packages), rows)


def forget_packages(conn: sa.Connection, repository: str, digest: str) -> None:
    """A withdrawn build's package rows go: package search never answers it."""
    p = search_packages.c
    conn.execute(sa.delete(search_packages).where(p.repository == repository,
                                                  p.digest == digest))


def refresh(conn: sa.Connection, repository: str, at: float) -> None:
    """Rewrite the search document of ``repository`` (removed if the image is gone)."""
    i, d = images.c, search_documents.c
    image = conn.execute(sa.select(i.namespace, i.name, i.status, i.summary).where(
        i.repository == repository)).first()
    if image is None:
        conn.execute(sa.delete(search_documents).where(d.repository == repository))
        return
    b, t = candidates.c, search_build_texts.c
    build = conn.execute(
        sa.select(b.name, b.version, b.release, t.labels, t.help)
        .select_from(candidates.outerjoin(search_build_texts, sa.and_(
            t.repository == b.repository, t.digest == b.digest)))
        .where(b.repository == repository, b.status.in_(_LIVE))
        .order_by(b.id.desc()).limit(1)).first()
    s = streams.c
    flags = [bool(row.eol) for row in conn.execute(
        sa.select(s.eol).where(s.repository == repository))]
    labels = json.loads(build.labels) if build is not None and build.labels else {}
    values = {
        "namespace": image.namespace, "name": image.name, "status": image.status,
        "eol": bool(flags) and all(flags), "summary": image.summary or "",
        "labels": labels_text(labels),
        "help": (build.help or "") if build is not None else "",
        "nvr": None if build is None else f"{build.name}-{build.version}-{build.release}",
        "updated_at": at,
    }
    inserted = conn.execute(insert_new(search_documents).values(
        repository=repository, **values))
    if inserted.rowcount != 1:
        conn.execute(sa.update(search_documents).where(
            d.repository == repository).values(**values))
