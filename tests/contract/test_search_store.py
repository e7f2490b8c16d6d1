"""The search index (``meta/search_store.py``, ``meta/search_sql.py``) on SQLite (FTS5) and
PostgreSQL (tsvector + GIN): documents follow every write of the rows they are made of, in
the same transaction; ranking puts the name first; filters, pages and package search."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import sqlalchemy as sa

from strata.meta import rebuild_store
from strata.meta.database import Database
from strata.meta.release_store import ReleaseStore, ReleaseWriter
from strata.meta.schema import search_documents
from strata.meta.search_store import SearchStore, TextSearch
from strata.release.model import (
    Build,
    BuildStatus,
    Image,
    ImageStatus,
    Namespace,
    Release,
    ReleaseKind,
    ReleaseStatus,
)
from strata.release.nvr import NVR
from strata.release.rebuild import BuildInputs, Package, packages_digest


def digest(n: int) -> str:
    return f"sha256:{n:064x}"


def image(repo: str, summary: str | None = None,
          status: ImageStatus = ImageStatus.ACTIVE) -> Image:
    ns, name = repo.split("/")
    return Image(repo, ns, name, status, (), None, None, 1.0, summary)


def build(repo: str, n: int, version: str = "1",
          status: BuildStatus = BuildStatus.CANDIDATE) -> Build:
    return Build(repo, digest(n), NVR(repo.split("/")[1], version, f"{n}.f25docker"), status,
                 (), None, None, 2.0 + n, "t")


def words(text: str) -> TextSearch:
    return TextSearch(tuple(text.lower().split()), text.lower())


async def names(store: SearchStore, search: TextSearch) -> list[str]:
    return [hit.repository for hit in await store.images(search)]


async def world(database: Database) -> ReleaseStore:
    releases = ReleaseStore(database)

    def go(tx: ReleaseWriter) -> None:
        for ns in ("f25", "f26"):
            tx.add_namespace(Namespace(ns, f"{ns}docker", 14, dt.date(2025, 6, 10), None, 1.0))
        tx.add_image(image("f25/cockpit", "Web console for servers"))
        tx.add_image(image("f25/cockpit-ws", "The cockpit web service"))
        tx.add_image(image("f25/postgresql", "Relational database; see cockpit docs"))
        tx.add_image(image("f26/nginx", "HTTP server and reverse proxy"))
        tx.add_image(image("f25/draft", "An image under review", ImageStatus.IN_REVIEW))
        tx.add_build(build("f25/postgresql", 1, "15"),
                     labels={"name": "postgresql", "io.k8s.description": "SQL engine"},
                     help_text="# postgresql\n\nRun with `podman run` and PGDATA volumes.")
    await releases.write(go)
    return releases


async def test_text_search_ranks_the_name_first_and_filters(database: Database) -> None:
    await world(database)
    store = SearchStore(database)
    # the image named so, then a name starting with it, then a summary that mentions it
    assert await names(store, words("cockpit")) == [
        "f25/cockpit", "f25/cockpit-ws", "f25/postgresql"]
    assert await names(store, words("cock")) == [  # words are prefixes
        "f25/cockpit", "f25/cockpit-ws", "f25/postgresql"]
    assert await names(store, words("web console")) == ["f25/cockpit"]  # every word
    assert await names(store, words("pgdata")) == ["f25/postgresql"]  # the help file
    assert await names(store, words("sql engine")) == ["f25/postgresql"]  # labels
    assert await names(store, words("nothingmatches")) == []
    assert await names(store, TextSearch(("server",), "server", namespace="f26")) == [
        "f26/nginx"]
    assert await names(store, TextSearch(("review",), "review", status="in-review")) == [
        "f25/draft"]
    assert await names(store, TextSearch(("review",), "review", status="active")) == []
    # pages: limit and offset; no words lists by repository
    every = await names(store, TextSearch((), ""))
    assert every == sorted(every) and len(every) == 5
    assert await names(store, TextSearch((), "", limit=2, offset=2)) == every[2:4]
    hit = (await store.images(words("postgresql")))[0]
    assert (hit.summary, hit.nvr, hit.status, hit.eol) == (
        "Relational database; see cockpit docs", "postgresql-15-1.f25docker", "active", False)


async def test_every_write_keeps_the_document_in_step(database: Database) -> None:
    releases = await world(database)
    store = SearchStore(database)

    # an image edited (image set / submit / approve): summary and status
    def edit(tx: Any) -> None:
        from strata.meta import review_sql
        review_sql.update_image(tx._conn, "f25/cockpit", {"summary": "Administration UI",
                                                          "status": "retired"})
    await releases.write(edit)
    assert await names(store, words("administration")) == ["f25/cockpit"]
    assert await names(store, words("console")) == []  # the old text is gone from the index
    assert await names(store, TextSearch(("cockpit",), "cockpit", status="retired")) == [
        "f25/cockpit"]

    # a newer build's texts replace the older build's
    await releases.write(lambda tx: tx.add_build(
        build("f25/postgresql", 2, "16"), labels={"summary": "newer"}, help_text="vacuum"))
    assert await names(store, words("pgdata")) == []
    assert await names(store, words("vacuum")) == ["f25/postgresql"]
    doc = await store.document("f25/postgresql")
    assert doc is not None and (doc.labels, doc.help, doc.nvr) == (
        {"summary": "newer"}, "vacuum", "postgresql-16-2.f25docker")

    # withdrawn: the older build's texts come back
    await releases.write(lambda tx: tx.withdraw_build(build("f25/postgresql", 2, "16"),
                                                      5.0, "t", "broken"))
    assert await names(store, words("pgdata")) == ["f25/postgresql"]

    # released: the NVR the document names
    await releases.write(lambda tx: tx.add_build(build("f26/nginx", 3, "1.27")))
    rel = Release("f26-2025-06-10", ReleaseKind.SCHEDULED, "f26", dt.date(2025, 6, 10),
                  ReleaseStatus.PUBLISHED, 6.0, 6.0, "releng", (), None)

    def publish(tx: ReleaseWriter) -> None:
        tx.add_release(rel)
        tx.publish(rel, [], [build("f26/nginx", 3, "1.27")], {}, "", 6.0)
    await releases.write(publish)
    (nginx,) = await store.images(words("nginx"))
    assert nginx.nvr == "nginx-1.27-3.f25docker"

    # EOL: every stream ended
    await releases.write(lambda tx: tx.set_eol("f26/nginx", "1.27", 7.0, "releng"))
    assert await names(store, TextSearch(("nginx",), "nginx", eol=True)) == ["f26/nginx"]
    assert await names(store, TextSearch(("nginx",), "nginx", eol=False)) == []

    # a write that fails leaves the index as it was (same transaction)
    def failing(tx: ReleaseWriter) -> None:
        tx.add_image(image("f25/ghost", "phantom image"))
        raise RuntimeError("rolled back")
    with pytest.raises(RuntimeError):
        await releases.write(failing)
    assert await names(store, words("phantom")) == []
    assert await database.read(lambda conn: conn.execute(
        sa.select(sa.func.count()).select_from(search_documents)).scalar_one()) == 5


async def test_package_search(database: Database) -> None:
    releases = await world(database)
    store = SearchStore(database)
    await releases.write(lambda tx: [tx.add_build(build(r, n)) for r, n in (
        ("f25/cockpit", 10), ("f25/cockpit-ws", 11), ("f26/nginx", 12))])
    for repo, n, version in (("f25/cockpit", 10, "3.0.8-1.fc25"),
                             ("f25/cockpit-ws", 11, "3.0.9-1.fc25"),
                             ("f26/nginx", 12, "3.0.8"), ("f25/postgresql", 1, "3.0.80-1")):
        pkgs = (Package("openssl", version, "x86_64"), Package("glibc", "2.41-1", "x86_64"))
        await database.write(lambda conn, _b, repo=repo, n=n, pkgs=pkgs:
                             rebuild_store.record_inputs(conn, repo, digest(n), BuildInputs(
                                 None, None, None, None, None, pkgs, packages_digest(pkgs)),
                                 3.0))
    hits = await store.packages("openssl")
    assert [(h.repository, h.version) for h in hits] == [
        ("f25/cockpit", "3.0.8-1.fc25"), ("f25/cockpit-ws", "3.0.9-1.fc25"),
        ("f25/postgresql", "3.0.80-1"), ("f26/nginx", "3.0.8")]
    # a version: exactly, or as the upstream part of version-release (3.0.80 is not 3.0.8)
    assert [h.repository for h in await store.packages("openssl", version="3.0.8")] == [
        "f25/cockpit", "f26/nginx"]
    assert [h.repository for h in await store.packages("openssl", namespace="f25")] == [
        "f25/cockpit", "f25/cockpit-ws", "f25/postgresql"]
    assert [h.repository for h in await store.packages(
        "openssl", repositories=["f26/nginx", "f25/cockpit"])] == ["f25/cockpit", "f26/nginx"]
    # keyset pages
    first = await store.packages("glibc", limit=2)
    last = first[-1]
    rest = await store.packages("glibc", after=(last.repository, last.digest, last.version,
                                                last.arch))
    assert [h.repository for h in first + rest] == [
        "f25/cockpit", "f25/cockpit-ws", "f25/postgresql", "f26/nginx"]
    assert await store.packages("no-such-package") == []
    # the release each build was in; withdrawn builds are not answered
    await releases.write(lambda tx: tx.withdraw_build(build("f25/cockpit-ws", 11), 9.0, "t",
                                                      "bad"))
    hit = (await store.packages("openssl", version="3.0.8"))[0]
    assert (hit.nvr, hit.status, hit.release, hit.arch) == (
        "cockpit-1-10.f25docker", "candidate", None, "x86_64")
    assert "f25/cockpit-ws" not in [h.repository for h in await store.packages("openssl")]


async def test_hostile_words_are_only_words(database: Database) -> None:
    """Query syntax of either engine in the words is searched for, never interpreted (the
    catalog passes only letters and digits; the store quotes them)."""
    await world(database)
    store = SearchStore(database)
    for word in ("or", "and", "not", "near", "cockpit"):
        await store.images(TextSearch((word,), word))
