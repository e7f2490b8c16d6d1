"""Records, blobs and raw reads shared by the contract tests (no backend-specific code)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from strata.meta import schema as rt
from strata.meta import schema as t
from strata.meta.records import ManifestRecord, Reference
from strata.meta.registry_store import RegistryStore
from strata.oci.mediatypes import OCI_INDEX, OCI_MANIFEST

# Python's sorted() of these is byte order; a linguistic collation (en-US) sorts them
# _x, a, A, a_b, a-b, a.b, B.
TRICKY_TAGS = ["A", "a", "B", "_x", "a-b", "a.b", "a_b"]


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def blob_digest(seed: str) -> str:
    return sha(f"blob {seed}".encode())


def manifest(repository: str, seed: str, *, layers: list[str] | None = None,
             children: list[str] | None = None, subject: str | None = None,
             artifact_type: str | None = None,
             annotations: dict[str, str] | None = None) -> tuple[ManifestRecord, list[Reference]]:
    """A manifest record (an index if ``children``) and its references; content is JSON
    naming its references, so distinct seeds and references give distinct digests."""
    media_type = OCI_INDEX if children is not None else OCI_MANIFEST
    doc: dict[str, Any] = {"seed": seed, "layers": layers or [], "manifests": children or []}
    if subject is not None:
        doc["subject"] = subject
    content = json.dumps(doc, sort_keys=True).encode()
    record = ManifestRecord(repository=repository, digest=sha(content), media_type=media_type,
                            size=len(content), content=content, artifact_type=artifact_type,
                            subject=subject, annotations=annotations or {})
    refs = [Reference(d, False) for d in layers or []]
    refs += [Reference(d, True) for d in children or []]
    return record, refs


async def add_blob(meta: RegistryStore, repository: str, digest: str, size: int = 10,
                   upload_id: str | None = None) -> None:
    """Record a blob as a finished upload would (no bytes: place/persist do nothing)."""
    await meta.finish_upload(upload_id or f"up-{digest[7:19]}-{repository}", repository,
                             digest, size, lambda: None, lambda digests: None)


async def push(meta: RegistryStore, repository: str, seed: str, tags: list[str],
               layers: int = 1) -> ManifestRecord:
    """Blobs, then a manifest referencing them, tagged ``tags``."""
    digests = [blob_digest(f"{seed}/{i}") for i in range(layers)]
    for d in digests:
        await add_blob(meta, repository, d)
    record, refs = manifest(repository, seed, layers=digests)
    await meta.put_manifest(record, refs, tags)
    return record


async def digest_of(found: Awaitable[ManifestRecord | None]) -> str | None:
    record = await found
    return None if record is None else record.digest


def tag_events(engine: sa.Engine, repository: str,
               tag: str | None = None) -> list[tuple[str, str | None, str | None]]:
    """(tag, old, new) of the repository's tag history, oldest first."""
    q = (sa.select(rt.tag_events.c.tag, rt.tag_events.c.old_digest, rt.tag_events.c.new_digest)
         .where(rt.tag_events.c.repository == repository).order_by(rt.tag_events.c.id))
    if tag is not None:
        q = q.where(rt.tag_events.c.tag == tag)
    with engine.connect() as conn:
        return [(r[0], r[1], r[2]) for r in conn.execute(q)]


def count(engine: sa.Engine, table: sa.Table) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def blob_row(engine: sa.Engine, digest: str) -> tuple[int, float] | None:
    with engine.connect() as conn:
        row = conn.execute(sa.select(t.blobs.c.size, t.blobs.c.created_at).where(
            t.blobs.c.digest == digest)).first()
    return None if row is None else (int(row[0]), float(row[1]))


def link_row(engine: sa.Engine, repository: str, digest: str) -> tuple[float, float] | None:
    """(created_at, touched_at) of ``digest``'s link into ``repository``."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(t.repository_blobs.c.created_at,
                                     t.repository_blobs.c.touched_at)
                           .select_from(t.repository_blobs.join(t.repositories))
                           .where(t.repositories.c.name == repository,
                                  t.repository_blobs.c.digest == digest)).first()
    return None if row is None else (float(row[0]), float(row[1]))


class Gate:
    """Stops a write in the middle of its transaction until the test lets it go.

    Call the gate from inside the transaction (a ``place`` or ``check_tag`` callback, or a
    statement hook); the test awaits :meth:`reached`, starts what should race the open
    transaction, then :meth:`release`\\ s it.
    """

    def __init__(self) -> None:
        self._entered = threading.Event()
        self._go = threading.Event()

    def __call__(self, *args: Any) -> None:
        self._entered.set()
        if not self._go.wait(30):
            raise TimeoutError("the test never released the gate")

    async def reached(self) -> None:
        if not await asyncio.to_thread(self._entered.wait, 30):
            raise TimeoutError("the write never reached the gate")

    def release(self) -> None:
        self._go.set()


@contextmanager
def gate_statement(engine: sa.Engine, prefix: str, gate: Gate) -> Iterator[None]:
    """Make the first statement starting with ``prefix`` run into ``gate`` first."""
    armed = [True]

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if armed[0] and statement.lstrip().upper().startswith(prefix.upper()):
            armed[0] = False
            gate()

    sa.event.listen(engine, "before_cursor_execute", before)
    try:
        yield
    finally:
        sa.event.remove(engine, "before_cursor_execute", before)


async def race(write: Awaitable[Any], gate: Gate,
               rival: Callable[[], Awaitable[Any]], *, head_start: float = 0.3
               ) -> tuple[Any, Any]:
    """Hold ``write`` at ``gate`` (inside its transaction), start ``rival()``, give it
    ``head_start`` seconds to get as far as it can, then let ``write`` commit; returns what
    the write and the rival returned. On SQLite the rival waits for the write lock; on
    PostgreSQL it runs into row or table locks, or does its work meanwhile: the outcome must
    be the same."""
    writing = asyncio.ensure_future(write)
    try:
        await gate.reached()
        rivalling = asyncio.ensure_future(rival())
        await asyncio.sleep(head_start)
    finally:
        gate.release()
    return await writing, await rivalling
