"""The trust domain's way to the database (issue 16): release keys (``signing_keys``) and the
signature manifests a release writes into the registry's tables.

- :class:`KeyStore` (on :class:`strata.meta.database.Database`): list a namespace's keys,
  rotate (retire the current key and add a new one, one transaction).
- :class:`TrustWriter`: bound to one write transaction -- the release publish's -- it reads
  and creates the namespace's current key and stores signature manifests: each manifest
  row (with its references, after checking the payload blobs are linked into the repository)
  and the ``sha256-<hex>.sig`` tag through :func:`strata.meta.tagwrite.write_tag` (past the
  registry's policy, which refuses that tag to every ``/v2/`` push of a managed repository).

Keys come back as :class:`KeyRecord` values, never rows.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import sqlalchemy as sa

from strata.meta import schema as t
from strata.meta.conflicts import insert_new
from strata.meta.database import Database
from strata.meta.errors import Conflict
from strata.meta.tagwrite import write_tag
from strata.oci import mediatypes as mt
from strata.oci.manifest import parse_manifest

T = TypeVar("T")

CURRENT = "current"
RETIRED = "retired"


@dataclass(frozen=True)
class KeyRecord:
    key_id: str
    namespace: str
    status: str
    public_pem: str
    private_pem: str = field(repr=False)
    created_at: float
    created_by: str
    retired_at: float | None

    def to_json(self) -> dict[str, Any]:
        """Everything public about the key (never the private half)."""
        return {"key_id": self.key_id, "namespace": self.namespace, "status": self.status,
                "public_key": self.public_pem, "created_at": self.created_at,
                "created_by": self.created_by, "retired_at": self.retired_at}


def _key(row: Any) -> KeyRecord:
    return KeyRecord(row.key_id, row.namespace, row.status, row.public_pem, row.private_pem,
                     row.created_at, row.created_by, row.retired_at)


class KeyReader:
    """Keys, read inside one transaction."""

    def __init__(self, conn: sa.Connection) -> None:
        self._conn = conn

    def namespace_exists(self, namespace: str, *, lock: bool = False) -> bool:
        """``lock``: the namespace row held until commit (PostgreSQL), so two writers of one
        namespace's keys take turns."""
        q = sa.select(t.namespaces.c.name).where(t.namespaces.c.name == namespace)
        if lock:
            q = q.with_for_update()
        return self._conn.execute(q).first() is not None

    def keys(self, namespace: str) -> list[KeyRecord]:
        """Every key of the namespace, the current one first, then newest first."""
        k = t.signing_keys.c
        rows = self._conn.execute(sa.select(t.signing_keys).where(k.namespace == namespace)
                                  .order_by((k.status == CURRENT).desc(), k.created_at.desc(),
                                            k.key_id))
        return [_key(row) for row in rows]

    def current(self, namespace: str) -> KeyRecord | None:
        k = t.signing_keys.c
        row = self._conn.execute(sa.select(t.signing_keys).where(
            k.namespace == namespace, k.status == CURRENT).order_by(k.created_at.desc())).first()
        return None if row is None else _key(row)


class KeyWriter(KeyReader):
    def add(self, record: KeyRecord) -> None:
        """Insert ``record``; a current key retires the namespace's previous current one.
        The caller holds the namespace row (:meth:`namespace_exists` with ``lock``)."""
        k = t.signing_keys.c
        if record.status == CURRENT:
            self._conn.execute(sa.update(t.signing_keys).where(
                k.namespace == record.namespace, k.status == CURRENT).values(
                    status=RETIRED, retired_at=record.created_at))
        done = self._conn.execute(insert_new(t.signing_keys).values(
            key_id=record.key_id, namespace=record.namespace, status=record.status,
            public_pem=record.public_pem, private_pem=record.private_pem,
            created_at=record.created_at, created_by=record.created_by,
            retired_at=record.retired_at)).rowcount
        if not done:
            raise Conflict(f"key {record.key_id} exists")


class TrustWriter(KeyWriter):
    """Inside the release publish transaction: keys, and the signature manifests."""

    def _repo_id(self, repository: str) -> int | None:
        row = self._conn.execute(sa.select(t.repositories.c.id).where(
            t.repositories.c.name == repository)).first()
        return None if row is None else int(row[0])

    def descriptor(self, repository: str, digest: str) -> dict[str, Any] | None:
        """The OCI descriptor (mediaType, digest, size) of a manifest of the repository."""
        m = t.manifests.c
        row = self._conn.execute(sa.select(m.media_type, m.size).select_from(
            t.manifests.join(t.repositories)).where(
                t.repositories.c.name == repository, m.digest == digest)).first()
        if row is None:
            return None
        return {"mediaType": str(row.media_type), "digest": digest, "size": int(row.size)}

    def released(self, repository: str, digest: str) -> bool:
        """Whether ``digest`` is a released build of the repository, or a manifest whose
        subject is one (an SBOM or provenance the release attached)."""
        c = t.candidates.c

        def is_build(d: str) -> bool:
            return self._conn.execute(sa.select(c.digest).where(
                c.repository == repository, c.digest == d, c.status == "released")).first() \
                is not None
        if is_build(digest):
            return True
        m = t.manifests.c
        subject = self._conn.execute(sa.select(m.subject).select_from(
            t.manifests.join(t.repositories)).where(
                t.repositories.c.name == repository, m.digest == digest)).scalar()
        return subject is not None and is_build(str(subject))

    def tagged(self, repository: str, tag: str) -> bytes | None:
        """The manifest bytes ``tag`` points to, if any."""
        m, g = t.manifests.c, t.tags.c
        row = self._conn.execute(sa.select(m.content).select_from(
            t.tags.join(t.repositories).join(t.manifests, sa.and_(
                m.repository_id == g.repository_id, m.digest == g.digest))).where(
                    t.repositories.c.name == repository, g.name == tag)).first()
        return None if row is None else bytes(row[0])

    def put_manifest(self, repository: str, content: bytes, at: float, *,
                     tag: str | None = None, actor: str = "release",
                     release: str | None = None) -> str:
        """Store an OCI image manifest of the repository (its blobs must be linked there:
        they are touched, as a push's are) and point ``tag`` at it; its digest."""
        parsed = parse_manifest(content, mt.OCI_MANIFEST)
        rid = self._repo_id(repository)
        if rid is None:
            raise Conflict(f"repository {repository} does not exist")
        rb = t.repository_blobs.c
        for blob in dict.fromkeys(str(b.digest) for b in parsed.blobs):
            if not self._conn.execute(sa.update(t.repository_blobs).where(
                    rb.repository_id == rid, rb.digest == blob).values(touched_at=at)).rowcount:
                raise Conflict(f"blob {blob} is not in {repository} (prepare the signature "
                               "blobs before the transaction)")
        digest = "sha256:" + hashlib.sha256(content).hexdigest()
        if self._conn.execute(insert_new(t.manifests).values(
                repository_id=rid, digest=digest, media_type=parsed.media_type,
                size=len(content), content=content, artifact_type=parsed.artifact_type,
                subject=str(parsed.subject.digest) if parsed.subject else None,
                annotations=json.dumps(parsed.annotations) if parsed.annotations else None,
                created_at=at)).rowcount:
            blobs = list(dict.fromkeys(str(b.digest) for b in parsed.blobs))
            if blobs:
                self._conn.execute(sa.insert(t.manifest_references), [
                    {"repository_id": rid, "parent": digest, "child": b, "is_manifest": False}
                    for b in blobs])
        if tag is not None:
            write_tag(self._conn, rid, tag, digest, at, actor=actor, release=release)
        return digest


class KeyStore:
    """Release keys on a :class:`Database` (with its clock)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def now(self) -> float:
        return self.db.now()

    async def read(self, fn: Callable[[KeyReader], T]) -> T:
        return await self.db.read(lambda conn: fn(KeyReader(conn)))

    async def write(self, fn: Callable[[KeyWriter], T]) -> T:
        return await self.db.write(lambda conn, _batch: fn(KeyWriter(conn)))

    @staticmethod
    def trust_writer(conn: sa.Connection) -> TrustWriter:
        """A :class:`TrustWriter` on another store's write transaction (the publish)."""
        return TrustWriter(conn)


