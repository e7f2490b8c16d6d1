"""The one tag write and its history, and what release management protects.

Shared by the registry (a push or delete through ``/v2/``, :mod:`strata.meta.registry_store`)
and the release engine (a publish): both run these inside their own write transaction.

- :func:`write_tag` points a tag at a digest and records the move; :func:`record_tag_event` is
  the one writer of ``tag_events``.
- :func:`is_managed` tells whether a repository is release-managed; :func:`holders` lists the
  manifests (with build status and tags) that keep a digest, for the registry's delete checks.
"""

from __future__ import annotations

import sqlalchemy as sa

from strata.meta.conflicts import insert_new
from strata.meta.fastread import run
from strata.meta.records import HeldBy, TagCheck
from strata.meta.schema_registry import manifest_references, repositories, tags
from strata.meta.schema_release import candidates, images, namespaces, tag_events

REGISTRY_ACTOR = "registry"
# A tag write starts over when another transaction creates the tag under it; each round
# needs a concurrent commit, so this is only a guard against a pathological loop.
_TAG_WRITE_ATTEMPTS = 20


# The tag write runs on every push; its statements are built once and run on the driver.
def _q_tag() -> sa.ClauseElement:
    # FOR UPDATE (PostgreSQL; SQLite has one writer): writers of one tag queue here, each
    # reading the digest the previous one committed, so the history is one unbroken chain.
    return sa.select(tags.c.digest).where(tags.c.repository_id == sa.bindparam("rid"),
                                          tags.c.name == sa.bindparam("tag")).with_for_update()


def _w_tag_add() -> sa.ClauseElement:
    return insert_new(tags).values(repository_id=sa.bindparam("rid"), name=sa.bindparam("tag"),
                                  digest=sa.bindparam("digest"), updated_at=sa.bindparam("at"))


def _w_tag_move() -> sa.ClauseElement:
    return sa.update(tags).where(
        tags.c.repository_id == sa.bindparam("rid"), tags.c.name == sa.bindparam("tag")).values(
            digest=sa.bindparam("digest"), updated_at=sa.bindparam("at"))


def _w_tag_event() -> sa.ClauseElement:
    name = sa.select(repositories.c.name).where(
        repositories.c.id == sa.bindparam("rid")).scalar_subquery()
    return sa.insert(tag_events).values(
        repository=name, tag=sa.bindparam("tag"), old_digest=sa.bindparam("old"),
        new_digest=sa.bindparam("new"), actor=sa.bindparam("actor"),
        release_name=sa.bindparam("release"), reason=sa.bindparam("reason"),
        at=sa.bindparam("at"))


def _q_managed() -> sa.ClauseElement:
    repo = repositories.alias("repo")
    image = sa.select(images.c.repository).where(images.c.repository == repo.c.name)
    # the namespace is the first path component (or the whole name: the repository ``f25``)
    # (constants as SQL text: the statement is compiled once and run with only ``rid`` bound)
    one, slash = sa.literal_column("1", sa.Integer), sa.literal_column("'/'", sa.String)
    namespace = sa.select(namespaces.c.name).where(sa.or_(
        namespaces.c.name == repo.c.name,
        sa.func.substr(repo.c.name, one, sa.func.length(namespaces.c.name) + one)
        == namespaces.c.name.concat(slash)))
    return sa.select(repo.c.id).where(repo.c.id == sa.bindparam("rid"),
                                      sa.or_(image.exists(), namespace.exists()))


def is_managed(conn: sa.Connection, repository_id: int) -> bool:
    """Whether the repository is release-managed: its image is registered (a row in
    ``images``) or its first path component is a registered namespace (``f25/x``, ``f25``).

    Read inside the writing transaction, so a name is protected from the moment its image or
    namespace is registered (see :mod:`strata.release.streams`, "Release-managed")."""
    return run(conn, _q_managed, rid=repository_id).fetchone() is not None


_MAX_INDEX_DEPTH = 8  # indexes of indexes: more than any client builds


def holders(conn: sa.Connection, repository_id: int, digest: str, *,
            is_blob: bool) -> list[HeldBy]:
    """The manifests of the repository that keep ``digest``: for a manifest, itself and the
    indexes that list it; for a blob, the manifests that reference it and the indexes that
    list those (transitively), each with its build status and tags."""
    refs = manifest_references
    held: list[str] = [] if is_blob else [digest]
    frontier = [digest]
    for _ in range(_MAX_INDEX_DEPTH):
        if not frontier:
            break
        parents = [str(row[0]) for row in conn.execute(sa.select(refs.c.parent).where(
            refs.c.repository_id == repository_id, refs.c.child.in_(frontier)).distinct())]
        frontier = [p for p in parents if p not in held]
        held.extend(frontier)
    if not held:
        return []
    name = conn.execute(sa.select(repositories.c.name).where(
        repositories.c.id == repository_id)).scalar_one()
    c = candidates.c
    builds = {str(row.digest): row for row in conn.execute(
        sa.select(c.digest, c.status, c.name, c.version, c.release).where(
            c.repository == name, c.digest.in_(held)))}
    tagged: dict[str, list[str]] = {}
    for tag, pointee in conn.execute(sa.select(tags.c.name, tags.c.digest).where(
            tags.c.repository_id == repository_id, tags.c.digest.in_(held))):
        tagged.setdefault(str(pointee), []).append(str(tag))
    out = []
    for d in held:
        build = builds.get(d)
        out.append(HeldBy(d, None if build is None else str(build.status),
                          None if build is None else
                          f"{build.name}-{build.version}-{build.release}",
                          tuple(sorted(tagged.get(d, ())))))
    return out


def record_tag_event(conn: sa.Connection, repository_id: int, tag: str, old: str | None,
                     new: str | None, at: float, *, actor: str = REGISTRY_ACTOR,
                     release: str | None = None, reason: str | None = None) -> None:
    """Append one tag move (``old`` None: created; ``new`` None: deleted) to the history."""
    if old == new:
        return
    run(conn, _w_tag_event, rid=repository_id, tag=tag, old=old, new=new, actor=actor,
        release=release, reason=reason, at=at)


def write_tag(conn: sa.Connection, repository_id: int, tag: str, digest: str, at: float, *,
              check: TagCheck | None = None,
              actor: str = REGISTRY_ACTOR, release: str | None = None,
              reason: str | None = None) -> str | None:
    """Point ``tag`` at ``digest`` and record the move; returns the digest it had.

    The one tag write: pushes through ``/v2/`` pass the registry policy as ``check(tag,
    current, managed)``, decided on this transaction's view of the repository; the release
    engine passes none (it applies the stream rules itself).
    """
    for _ in range(_TAG_WRITE_ATTEMPTS):
        row = run(conn, _q_tag, rid=repository_id, tag=tag).fetchone()
        old = None if row is None else str(row[0])
        if check is not None:
            check(tag, old, is_managed(conn, repository_id))
        if old is None:
            if run(conn, _w_tag_add, rid=repository_id, tag=tag, digest=digest,
                   at=at).rowcount:
                break
            # Another transaction created the tag meanwhile (PostgreSQL): it exists now, so
            # start over from the digest it was given (and ask the policy again).
            continue
        if old != digest:
            run(conn, _w_tag_move, rid=repository_id, tag=tag, digest=digest, at=at)
        break
    else:
        raise RuntimeError(f"tag {tag!r} kept changing under its write")
    record_tag_event(conn, repository_id, tag, old, digest, at, actor=actor, release=release,
                     reason=reason)
    return old
