"""Webhooks: events written to an outbox inside the transaction that caused them, then POSTed.

:func:`enqueue` runs in the caller's transaction, so an event exists exactly when what it
reports was committed. :class:`WebhookSender` delivers due outbox rows: JSON ``POST`` with
``X-Strata-Event`` and ``X-Strata-Delivery`` headers and, when the webhook has a secret,
``X-Strata-Signature: sha256=<HMAC-SHA256 of the body>``. A 2xx answer delivers; anything
else is retried with exponential backoff (``base * 2**(attempt-1)``, capped) until
``max_attempts``, then the row is ``failed``. Several server processes may run senders: a row
is claimed with a conditional UPDATE (``claimed_until``) before it is sent, so one process
sends it (at-least-once: a process that dies after sending and before recording is retried).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import sqlalchemy as sa

from strata.meta import release_tables as r
from strata.meta.engine import locked_begin
from strata.release.model import invalid, iso_time

EVENTS = frozenset({"release.published", "tag.rolled_back", "stream.eol", "candidate.added"})
PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


@dataclass(frozen=True)
class Webhook:
    id: int
    url: str
    events: tuple[str, ...]
    active: bool
    created_at: float

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "url": self.url, "events": list(self.events),
                "active": self.active, "created_at": iso_time(self.created_at)}


@dataclass(frozen=True)
class RetryPolicy:
    base_delay: float = 2.0
    max_delay: float = 600.0
    max_attempts: int = 10
    timeout: float = 10.0
    claim_seconds: float = 60.0

    def delay(self, attempts: int) -> float:
        return float(min(self.base_delay * 2 ** max(attempts - 1, 0), self.max_delay))


# -- inside other transactions ---------------------------------------------------------------
def enqueue(conn: sa.Connection, event: str, data: dict[str, Any], at: float) -> int:
    """Queue ``event`` for every active webhook that wants it; returns how many rows."""
    payload = json.dumps({"id": uuid.uuid4().hex, "event": event, "at": iso_time(at),
                          "data": data}, sort_keys=True)
    rows = []
    for hook in list_webhooks(conn):
        if hook.active and (not hook.events or event in hook.events):
            rows.append({"webhook_id": hook.id, "event": event, "payload": payload,
                         "status": PENDING, "attempts": 0, "next_attempt_at": at,
                         "created_at": at})
    if rows:
        conn.execute(sa.insert(r.webhook_outbox), rows)
    return len(rows)


def add_webhook(conn: sa.Connection, url: str, events: Sequence[str], secret: str | None,
                at: float) -> Webhook:
    if not url.startswith(("http://", "https://")):
        raise invalid(f"webhook URL must be http:// or https://, not {url!r}")
    unknown = sorted(set(events) - EVENTS)
    if unknown:
        raise invalid(f"unknown event(s) {', '.join(unknown)}; known: {', '.join(sorted(EVENTS))}")
    result = conn.execute(sa.insert(r.webhooks).values(
        url=url, events=json.dumps(sorted(set(events))), secret=secret, active=True,
        created_at=at))
    pk = result.inserted_primary_key
    assert pk is not None
    return Webhook(int(pk[0]), url, tuple(sorted(set(events))), True, at)


def list_webhooks(conn: sa.Connection) -> list[Webhook]:
    rows = conn.execute(sa.select(r.webhooks).order_by(r.webhooks.c.id))
    return [Webhook(row.id, row.url, tuple(json.loads(row.events)), bool(row.active),
                    row.created_at) for row in rows]


def list_deliveries(conn: sa.Connection, webhook_id: int | None = None,
                    limit: int = 100) -> list[dict[str, Any]]:
    c = r.webhook_outbox.c
    q = sa.select(r.webhook_outbox).order_by(c.id.desc()).limit(limit)
    if webhook_id is not None:
        q = q.where(c.webhook_id == webhook_id)
    return [{"id": row.id, "webhook_id": row.webhook_id, "event": row.event,
             "status": row.status, "attempts": row.attempts,
             "next_attempt_at": iso_time(row.next_attempt_at), "last_error": row.last_error,
             "delivered_at": iso_time(row.delivered_at)} for row in conn.execute(q)]


# -- delivery --------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Claimed:
    id: int
    url: str
    secret: str | None
    event: str
    payload: str
    attempts: int


class WebhookSender:
    def __init__(self, db: sa.Engine, *, policy: RetryPolicy | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self.policy = policy or RetryPolicy()
        self._clock = clock

    def _claim(self, limit: int) -> list[_Claimed]:
        now = self._clock()
        o, w = r.webhook_outbox.c, r.webhooks.c
        free = sa.or_(o.claimed_until.is_(None), o.claimed_until < now)
        claimed: list[_Claimed] = []
        due = (sa.select(o.id, w.url, w.secret, o.event, o.payload, o.attempts)
               .select_from(r.webhook_outbox.join(r.webhooks, w.id == o.webhook_id))
               .where(o.status == PENDING, o.next_attempt_at <= now, free)
               .order_by(o.next_attempt_at, o.id).limit(limit))
        with self._db.connect().execution_options(readonly=True) as conn:
            rows = conn.execute(due).all()  # idle rounds take no write lock
        if not rows:
            return claimed
        with locked_begin(self._db) as conn:
            for row in rows:
                won = conn.execute(sa.update(r.webhook_outbox).where(
                    o.id == row.id, o.status == PENDING, free).values(
                        claimed_until=now + self.policy.claim_seconds)).rowcount == 1
                if won:
                    claimed.append(_Claimed(*row))
        return claimed

    def _finish(self, item: _Claimed, error: str | None) -> None:
        now = self._clock()
        attempts = item.attempts + 1
        values: dict[str, Any] = {"attempts": attempts, "claimed_until": None,
                                  "last_error": error}
        if error is None:
            values.update(status=DELIVERED, delivered_at=now)
        elif attempts >= self.policy.max_attempts:
            values.update(status=FAILED)
        else:
            values.update(next_attempt_at=now + self.policy.delay(attempts))
        with locked_begin(self._db) as conn:
            conn.execute(sa.update(r.webhook_outbox).where(
                r.webhook_outbox.c.id == item.id).values(**values))

    async def _post(self, session: aiohttp.ClientSession, item: _Claimed) -> str | None:
        body = item.payload.encode()
        headers = {"Content-Type": "application/json", "X-Strata-Event": item.event,
                   "X-Strata-Delivery": str(item.id), "User-Agent": "strata-webhooks"}
        if item.secret:
            mac = hmac.new(item.secret.encode(), body, hashlib.sha256).hexdigest()
            headers["X-Strata-Signature"] = f"sha256={mac}"
        try:
            timeout = aiohttp.ClientTimeout(total=self.policy.timeout)
            async with session.post(item.url, data=body, headers=headers,
                                    timeout=timeout, allow_redirects=False) as resp:
                await resp.read()
                return None if 200 <= resp.status < 300 else f"HTTP {resp.status}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            return f"{type(exc).__name__}: {exc}"[:500]

    async def deliver_due(self, session: aiohttp.ClientSession, limit: int = 50) -> int:
        """Send every due delivery once; returns how many were sent successfully."""
        claimed = await asyncio.to_thread(self._claim, limit)
        delivered = 0
        for item in claimed:
            error = await self._post(session, item)
            await asyncio.to_thread(self._finish, item, error)
            delivered += error is None
        return delivered
