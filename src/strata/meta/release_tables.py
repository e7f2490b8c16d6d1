"""Release tables: namespaces, images, candidates, streams, releases, tag history, webhooks.

Defined on the registry's :data:`strata.meta.tables.metadata` (migration ``0002_release``
creates them). Dates are ISO strings (``YYYY-MM-DD``) and times are Unix seconds (floats), as
in the registry tables, so SQLite and PostgreSQL behave alike. JSON columns are ``Text``.

:func:`record_tag_event` is the one writer of ``tag_events``: the registry's metadata store
calls it inside its tag-write transactions, the release engine inside its publish transaction.
"""

from __future__ import annotations

import sqlalchemy as sa

from strata.meta.conflicts import insert_new
from strata.meta.fastread import run
from strata.meta.records import HeldBy, TagCheck
from strata.meta.tables import manifest_references, metadata, repositories, tags

namespaces = sa.Table(
    "namespaces",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("dist_tag", sa.String(64), nullable=False),
    sa.Column("interval_days", sa.Integer, nullable=False, server_default="14"),
    sa.Column("anchor", sa.String(10), nullable=False),
    sa.Column("base_image", sa.String(512), nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
)

images = sa.Table(
    "images",
    metadata,
    sa.Column("repository", sa.String(255), primary_key=True),
    sa.Column("namespace", sa.String(64), sa.ForeignKey("namespaces.name"), nullable=False),
    sa.Column("name", sa.String(190), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("maintainers", sa.Text, nullable=False, server_default="[]"),
    sa.Column("source_url", sa.String(1024), nullable=True),
    sa.Column("source_branch", sa.String(255), nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Index("ix_images_namespace", "namespace"),
)

candidates = sa.Table(
    "candidates",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("repository", sa.String(255), sa.ForeignKey("images.repository"), nullable=False),
    sa.Column("digest", sa.String(200), nullable=False),
    sa.Column("name", sa.String(190), nullable=False),
    sa.Column("version", sa.String(64), nullable=False),
    sa.Column("release", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("advisories", sa.Text, nullable=False, server_default="[]"),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("release_name", sa.String(128), nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("created_by", sa.String(255), nullable=False),
    sa.Column("withdrawn_at", sa.Float, nullable=True),  # migration 0005
    sa.Column("withdrawn_by", sa.String(255), nullable=True),
    sa.Column("withdrawn_reason", sa.Text, nullable=True),
    sa.UniqueConstraint("repository", "digest", name="uq_candidates_digest"),
    sa.UniqueConstraint("repository", "version", "release", name="uq_candidates_nvr"),
    sa.Index("ix_candidates_status", "status", "repository"),
)

streams = sa.Table(
    "streams",
    metadata,
    sa.Column("repository", sa.String(255), sa.ForeignKey("images.repository"),
              primary_key=True),
    sa.Column("version", sa.String(64), primary_key=True),
    sa.Column("eol", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("eol_at", sa.Float, nullable=True),
    sa.Column("eol_by", sa.String(255), nullable=True),
)

releases = sa.Table(
    "releases",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("namespace", sa.String(64), sa.ForeignKey("namespaces.name"), nullable=False),
    sa.Column("scheduled_for", sa.String(10), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("published_at", sa.Float, nullable=True),
    sa.Column("actor", sa.String(255), nullable=True),
    sa.Column("advisories", sa.Text, nullable=False, server_default="[]"),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("notes_md", sa.Text, nullable=True),
    sa.Column("notes_json", sa.Text, nullable=True),
    sa.Index("ix_releases_namespace", "namespace", "kind", "scheduled_for"),
)

release_items = sa.Table(
    "release_items",
    metadata,
    sa.Column("release_name", sa.String(128), sa.ForeignKey("releases.name"), primary_key=True),
    sa.Column("repository", sa.String(255), primary_key=True),
    sa.Column("digest", sa.String(200), primary_key=True),
    sa.Column("nvr", sa.String(320), nullable=False),
)

tag_events = sa.Table(
    "tag_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("repository", sa.String(255), nullable=False),
    sa.Column("tag", sa.String(128), nullable=False),
    sa.Column("old_digest", sa.String(200), nullable=True),
    sa.Column("new_digest", sa.String(200), nullable=True),
    sa.Column("actor", sa.String(255), nullable=False),
    sa.Column("release_name", sa.String(128), nullable=True),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("at", sa.Float, nullable=False),
    sa.Index("ix_tag_events_tag", "repository", "tag", "at"),
)

webhooks = sa.Table(
    "webhooks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("url", sa.String(2048), nullable=False),  # redacted: what everyone is shown
    sa.Column("events", sa.Text, nullable=False, server_default="[]"),
    sa.Column("secret", sa.Text, nullable=True),  # sealed (SecretBox); Text since 0007
    sa.Column("url_sealed", sa.Text, nullable=True),  # the whole URL, sealed, if redacted (0007)
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("created_at", sa.Float, nullable=False),
)

webhook_outbox = sa.Table(
    "webhook_outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("webhook_id", sa.Integer, sa.ForeignKey("webhooks.id"), nullable=False),
    sa.Column("event", sa.String(64), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", sa.Float, nullable=False),
    sa.Column("claimed_until", sa.Float, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("delivered_at", sa.Float, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Index("ix_webhook_outbox_due", "status", "next_attempt_at"),
)

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
