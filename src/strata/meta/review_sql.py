"""The SQL of image sources and reviews (issue 14): review requests, their comments and
checks, image events, image edits and maintainer grants. Functions on a connection; the caller
owns the transaction (:class:`strata.meta.review_store.ReviewStore` and
:class:`strata.meta.release_store.ReleaseWriter` run them inside theirs).

A maintainer of an image is recorded twice, in one transaction: in ``images.maintainers`` (what
the image shows) and as the account's ``maintainer`` grant on the image in
``auth_role_grants`` (what authorizes pushes and candidate registrations). A grant change bumps
the account's credential generation (as every role change does): its earlier tokens end.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from strata.meta import search_sql
from strata.meta.schema_auth import auth_accounts, auth_role_grants
from strata.meta.schema_release import images
from strata.meta.schema_review import image_events, review_comments, review_requests

MAINTAINER = "maintainer"


# -- image events -----------------------------------------------------------------------------
def record_event(conn: sa.Connection, repository: str, event: str, actor: str, at: float, *,
                 reason: str | None = None, detail: Mapping[str, Any] | None = None) -> None:
    conn.execute(sa.insert(image_events).values(
        repository=repository, event=event, actor=actor, reason=reason, at=at,
        detail=json.dumps(dict(detail), sort_keys=True) if detail is not None else None))


def events(conn: sa.Connection, repository: str, limit: int = 1000) -> list[dict[str, Any]]:
    c = image_events.c
    rows = conn.execute(sa.select(image_events).where(c.repository == repository)
                        .order_by(c.at, c.id).limit(limit))
    return [{"event": row.event, "actor": row.actor, "reason": row.reason, "at": row.at,
             "detail": json.loads(row.detail) if row.detail else None} for row in rows]


# -- images ------------------------------------------------------------------------------------
def update_image(conn: sa.Connection, repository: str, values: Mapping[str, Any]) -> None:
    """Set columns of an image row (``source_url``, ``source_branch``, ``summary``,
    ``status``; ``maintainers`` as a list)."""
    row = dict(values)
    if "maintainers" in row:
        row["maintainers"] = json.dumps(list(row["maintainers"]))
    if row:
        conn.execute(sa.update(images).where(images.c.repository == repository).values(**row))
        search_sql.refresh(conn, repository, time.time())


def set_grant(conn: sa.Connection, account: str, repository: str, granted: bool) -> bool:
    """Give (or take) ``account`` the maintainer grant on ``repository``; False when no
    active account has that name. A change bumps the account's generation."""
    row = conn.execute(sa.select(auth_accounts.c.id).where(
        auth_accounts.c.name == account, auth_accounts.c.revoked_at.is_(None))).first()
    if row is None:
        return False
    g = auth_role_grants.c
    has = conn.execute(sa.select(g.role).where(
        g.account_id == row.id, g.role == MAINTAINER, g.image == repository)).first()
    if granted and has is None:
        conn.execute(sa.insert(auth_role_grants).values(
            account_id=row.id, role=MAINTAINER, image=repository))
    elif not granted and has is not None:
        conn.execute(sa.delete(auth_role_grants).where(
            g.account_id == row.id, g.role == MAINTAINER, g.image == repository))
    else:
        return True
    conn.execute(sa.update(auth_accounts).where(auth_accounts.c.id == row.id).values(
        generation=auth_accounts.c.generation + 1))
    return True


# -- review requests ---------------------------------------------------------------------------
def _request(row: Any) -> dict[str, Any]:
    return {"id": int(row.id), "repository": row.repository, "namespace": row.namespace,
            "submitter": row.submitter,
            "source": {"url": row.source_url, "branch": row.source_branch},
            "status": row.status, "checks": json.loads(row.checks or "[]"),
            "created_at": row.created_at, "decided_at": row.decided_at,
            "decided_by": row.decided_by}


def insert_request(conn: sa.Connection, *, repository: str, namespace: str, submitter: str,
                   source_url: str, source_branch: str | None, at: float) -> int:
    result = conn.execute(sa.insert(review_requests).values(
        repository=repository, namespace=namespace, submitter=submitter,
        source_url=source_url, source_branch=source_branch, status="open", checks="[]",
        created_at=at))
    pk = result.inserted_primary_key
    assert pk is not None
    return int(pk[0])


def get_request(conn: sa.Connection, request_id: int, *,
                lock: bool = False) -> dict[str, Any] | None:
    q = sa.select(review_requests).where(review_requests.c.id == request_id)
    if lock:
        q = q.with_for_update()
    row = conn.execute(q).first()
    if row is None:
        return None
    out = _request(row)
    out["comments"] = comments(conn, request_id)
    return out


def open_request_of(conn: sa.Connection, repository: str) -> int | None:
    c = review_requests.c
    row = conn.execute(sa.select(c.id).where(c.repository == repository, c.status == "open")
                       .order_by(c.id.desc())).first()
    return None if row is None else int(row[0])


def list_requests(conn: sa.Connection, *, status: str | None = None,
                  namespace: str | None = None, limit: int = 500,
                  before: int | None = None) -> list[dict[str, Any]]:
    """Newest first; ``before``: only requests older than that id (the API's cursor)."""
    c = review_requests.c
    q = sa.select(review_requests).order_by(c.id.desc()).limit(limit)
    if before is not None:
        q = q.where(c.id < before)
    if status is not None:
        q = q.where(c.status == status)
    if namespace is not None:
        q = q.where(c.namespace == namespace)
    return [_request(row) for row in conn.execute(q)]


def set_checks(conn: sa.Connection, request_id: int, checks: Sequence[Mapping[str, Any]]) -> None:
    conn.execute(sa.update(review_requests).where(review_requests.c.id == request_id).values(
        checks=json.dumps([dict(c) for c in checks])))


def decide(conn: sa.Connection, request_id: int, status: str, by: str, at: float) -> bool:
    """Close an open request; False when it is no longer open."""
    c = review_requests.c
    result = conn.execute(sa.update(review_requests).where(
        c.id == request_id, c.status == "open").values(
            status=status, decided_by=by, decided_at=at))
    return result.rowcount == 1


def add_comment(conn: sa.Connection, request_id: int, author: str, kind: str, text: str,
                at: float) -> None:
    conn.execute(sa.insert(review_comments).values(
        request_id=request_id, author=author, kind=kind, text=text, at=at))


def comments(conn: sa.Connection, request_id: int) -> list[dict[str, Any]]:
    c = review_comments.c
    rows = conn.execute(sa.select(review_comments).where(c.request_id == request_id)
                        .order_by(c.at, c.id))
    return [{"author": row.author, "kind": row.kind, "text": row.text, "at": row.at}
            for row in rows]
