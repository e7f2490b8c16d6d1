"""A large, deterministic catalog written straight into a strata database, for the search and
image-page benchmarks (``bench/search_bench.py``) and anyone who needs one.

``populate(database, images=10_000, ...)`` writes, in one transaction per table family and
with bulk inserts (PostgreSQL: ``COPY`` for the package rows):

* namespaces ``ns00``.. (``images // 1000`` of them, at least one), each with its dist tag;
* per image ``nsNN/<name>``: an ``active`` image row (a few ``in-review`` and ``retired``) with
  a summary of vocabulary words, a registry repository, ``builds`` registered builds (versions
  1..3, releases 1..2: ``candidates`` released in a release of the namespace, a small OCI
  manifest each), their tags (every NVR, every version, ``latest``: ``tags_per_image``), one
  tag event per tag, labels and a help file for the newest build (``search_build_texts``);
* ``packages`` package rows spread over the newest build of every version
  (``search_packages``; plus ``candidate_inputs`` package lists for those builds): 30 common
  packages in every image (glibc, openssl, ...) and the rest drawn from ``package_names``;
* the search documents, through :func:`strata.meta.search_sql.refresh` (the code every write
  path calls), so each database's full-text index is built as in production.

Everything comes from ``random.Random(seed)``: the same arguments give the same catalog.
:func:`vocabulary` and :data:`COMMON_PACKAGES` let a benchmark ask questions that have answers.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from strata.meta import schema as s
from strata.meta import search_sql
from strata.meta.database import Database

COMMON_PACKAGES = ("glibc", "openssl", "bash", "coreutils", "systemd-libs", "zlib", "xz-libs",
                   "libgcc", "ncurses-libs", "sqlite-libs", "krb5-libs", "libcurl", "pcre2",
                   "libselinux", "libsepol", "audit-libs", "libcap", "libacl", "libattr",
                   "gmp", "mpfr", "readline", "expat", "libffi", "libxml2", "lz4-libs",
                   "zstd", "libzstd", "p11-kit", "ca-certificates")
VERSIONS = ("1", "2", "3")
RELEASES = ("1", "2")
_SYLLABLES = ("ka", "lo", "mi", "nu", "po", "ra", "se", "ti", "vu", "xa", "ze", "bri", "cor",
              "dal", "fen", "gor", "hul", "jin", "kest", "lum", "mor", "nix", "orb", "pyr")


def vocabulary(size: int = 600, seed: int = 1) -> list[str]:
    """Distinct made-up words (two or three syllables)."""
    rng = random.Random(seed)
    words: dict[str, None] = {}
    while len(words) < size:
        words["".join(rng.choice(_SYLLABLES) for _ in range(rng.choice((2, 3))))] = None
    return list(words)


def package_names(count: int = 3000, seed: int = 2) -> list[str]:
    rng = random.Random(seed)
    vocab = vocabulary(seed=seed)
    names: dict[str, None] = {}
    while len(names) < count:
        names[f"{rng.choice(vocab)}-{rng.choice(('libs', 'tools', 'devel', 'data', 'core'))}"
              f"{rng.randrange(10)}"] = None
    return list(names)


def _digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Catalog:
    """What was written (for the benchmark's questions)."""

    repositories: list[str]
    words: list[str]
    packages: list[str]
    rows: dict[str, int]


def _chunks(rows: list[dict[str, Any]], size: int = 5000) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(rows), size):
        yield rows[start:start + size]


def populate(db: Database, *, images: int = 10_000, packages: int = 1_000_000,
             seed: int = 7, at: float = 1_750_000_000.0) -> Catalog:
    rng = random.Random(seed)
    words = vocabulary()
    extra = package_names()
    namespaces = [f"ns{n:02d}" for n in range(max(1, images // 1000))]
    repos: list[str] = []
    taken: set[str] = set()
    while len(repos) < images:
        name = f"{rng.choice(words)}-{rng.choice(words)}"
        if name in taken:
            name = f"{name}{len(repos)}"
        taken.add(name)
        repos.append(f"{namespaces[len(repos) % len(namespaces)]}/{name}")
    rows: dict[str, list[dict[str, Any]]] = {k: [] for k in (
        "namespaces", "images", "repositories", "manifests", "candidates", "releases",
        "release_items", "tags", "tag_events", "texts", "inputs")}
    for ns in namespaces:
        rows["namespaces"].append({"name": ns, "dist_tag": f"{ns}docker", "interval_days": 14,
                                   "anchor": "2025-06-10", "base_image": None,
                                   "created_at": at})
        rows["releases"].append({"name": f"{ns}-2025-06-10", "kind": "scheduled",
                                 "namespace": ns, "scheduled_for": "2025-06-10",
                                 "status": "published", "created_at": at,
                                 "published_at": at, "actor": "bench", "advisories": "[]"})
    per_build = max(1, -(-packages // (images * len(VERSIONS))))  # at least `packages`
    newest: list[tuple[str, str]] = []
    for rid, repo in enumerate(repos, start=1):
        ns, name = repo.split("/")
        status = "in-review" if rid % 97 == 0 else "retired" if rid % 89 == 0 else "active"
        summary = " ".join(rng.choice(words) for _ in range(rng.randint(4, 10)))
        rows["images"].append({"repository": repo, "namespace": ns, "name": name,
                               "status": status, "maintainers": '["bench"]',
                               "source_url": f"https://git.example/{name}.git",
                               "source_branch": ns, "created_at": at, "summary": summary})
        rows["repositories"].append({"id": rid, "name": repo, "created_at": at})
        for version in VERSIONS:
            for release in RELEASES:
                nvr = f"{name}-{version}-{release}.{ns}docker"
                digest = _digest(nvr)
                manifest = json.dumps({
                    "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                               "digest": _digest(nvr + "c"), "size": 900},
                    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                "digest": _digest(nvr + "l"), "size": 30_000_000}]}).encode()
                rows["manifests"].append({
                    "repository_id": rid, "digest": digest, "size": len(manifest),
                    "media_type": "application/vnd.oci.image.manifest.v1+json",
                    "content": manifest, "created_at": at})
                rows["candidates"].append({
                    "repository": repo, "digest": digest, "name": name, "version": version,
                    "release": f"{release}.{ns}docker", "status": "released",
                    "advisories": "[]", "release_name": f"{ns}-2025-06-10",
                    "created_at": at, "created_by": "bench"})
                rows["release_items"].append({"release_name": f"{ns}-2025-06-10",
                                              "repository": repo, "digest": digest,
                                              "nvr": nvr})
                tag_list = [f"{version}-{release}.{ns}docker"]
                if release == RELEASES[-1]:
                    tag_list.append(version)
                    newest.append((repo, digest))
                    if version == VERSIONS[-1]:
                        tag_list.append("latest")
                        rows["texts"].append({
                            "repository": repo, "digest": digest,
                            "labels": json.dumps({"name": name, "version": version,
                                                  "summary": summary,
                                                  "io.k8s.display-name": name.upper()}),
                            "help": f"# {name}\n\n{summary}.\n\n" + " ".join(
                                rng.choice(words) for _ in range(60))})
                for tag in tag_list:
                    rows["tags"].append({"repository_id": rid, "name": tag, "digest": digest,
                                         "updated_at": at})
                    rows["tag_events"].append({
                        "repository": repo, "tag": tag, "old_digest": None,
                        "new_digest": digest, "actor": "bench",
                        "release_name": f"{ns}-2025-06-10", "at": at})
    package_rows: list[tuple[str, str, str, str, str]] = []
    for repo, digest in newest:
        chosen = list(COMMON_PACKAGES[:min(len(COMMON_PACKAGES), per_build)])
        chosen += rng.sample(extra, max(0, per_build - len(chosen)))
        pkgs = [(p, f"{rng.randint(1, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}-"
                 f"{rng.randint(1, 3)}.fc25", "x86_64") for p in chosen]
        package_rows += [(p, repo, digest, v, a) for p, v, a in pkgs]
        rows["inputs"].append({"repository": repo, "digest": digest,
                               "packages": json.dumps([list(p) for p in pkgs]),
                               "created_at": at})
    tables = {"namespaces": s.namespaces, "images": s.images, "repositories": s.repositories,
              "manifests": s.manifests, "candidates": s.candidates, "releases": s.releases,
              "release_items": s.release_items, "tags": s.tags, "tag_events": s.tag_events,
              "texts": s.search_build_texts, "inputs": s.candidate_inputs}
    engine = db.sa_engine
    with engine.begin() as conn:
        for key, table in tables.items():
            for chunk in _chunks(rows[key]):
                conn.execute(sa.insert(table), chunk)
    _write_packages(engine, package_rows)
    with engine.begin() as conn:
        for repo in repos:
            search_sql.refresh(conn, repo, at)
    counts = {"images": len(repos), "tags": len(rows["tags"]),
              "builds": len(rows["candidates"]), "package_rows": len(package_rows)}
    return Catalog(repos, words, [*COMMON_PACKAGES, *extra], counts)


def _write_packages(engine: sa.Engine, rows: list[tuple[str, str, str, str, str]]) -> None:
    if engine.dialect.name == "postgresql":
        raw = engine.raw_connection()
        try:
            with raw.cursor() as cur, cur.copy(  # type: ignore[attr-defined]
                    "COPY search_packages (name, repository, digest, version, arch) "
                    "FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            raw.commit()
        finally:
            raw.close()
        return
    keys = ("name", "repository", "digest", "version", "arch")
    with engine.begin() as conn:
        for start in range(0, len(rows), 20_000):
            conn.execute(sa.insert(s.search_packages),
                         [dict(zip(keys, row, strict=True))
                          for row in rows[start:start + 20_000]])
