"""SQL of webhooks and their outbox: the registrations, the events queued for them, and the
claims of the processes that deliver them.

:func:`enqueue` runs inside another transaction (a release, a rollback, a new candidate...), so
an event exists exactly when what it reports was committed. :class:`WebhookStore` is the rest:
registering webhooks, listing deliveries, claiming due deliveries (a conditional UPDATE of
``claimed_until``, so one process sends each) and recording how an attempt went. The sending,
the retry policy and the sealing of secrets are :mod:`strata.release.webhooks`'s.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa

from strata.meta import schema as r
from strata.meta.database import Database
from strata.release.model import (
    ClaimedDelivery,
    Delivery,
    DeliveryOutcome,
    Webhook,
    WebhookSecrets,
    iso_time,
)

PENDING = "pending"


def _webhooks(conn: sa.Connection) -> list[Webhook]:
    rows = conn.execute(sa.select(r.webhooks).order_by(r.webhooks.c.id))
    return [Webhook(row.id, row.url, tuple(json.loads(row.events)), bool(row.active),
                    row.created_at) for row in rows]


def enqueue(conn: sa.Connection, event: str, data: dict[str, Any], at: float) -> int:
    """Queue ``event`` for every active webhook that wants it, in the caller's transaction;
    returns how many rows."""
    payload = json.dumps({"id": uuid.uuid4().hex, "event": event, "at": iso_time(at),
                          "data": data}, sort_keys=True)
    rows = [{"webhook_id": hook.id, "event": event, "payload": payload, "status": PENDING,
             "attempts": 0, "next_attempt_at": at, "created_at": at}
            for hook in _webhooks(conn)
            if hook.active and (not hook.events or event in hook.events)]
    if rows:
        conn.execute(sa.insert(r.webhook_outbox), rows)
    return len(rows)


class WebhookStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(self, url: str, url_sealed: str | None, events: Sequence[str],
                  secret_sealed: str | None, at: float) -> Webhook:
        """Register a webhook: ``url`` is the redacted URL everyone is shown, ``url_sealed``
        the whole one sealed (None when nothing was redacted)."""
        chosen = tuple(sorted(set(events)))

        def go(conn: sa.Connection, _batch: Any) -> Webhook:
            result = conn.execute(sa.insert(r.webhooks).values(
                url=url, url_sealed=url_sealed, events=json.dumps(list(chosen)),
                secret=secret_sealed, active=True, created_at=at))
            pk = result.inserted_primary_key
            assert pk is not None
            return Webhook(int(pk[0]), url, chosen, True, at)
        return await self.db.write(go)

    async def webhooks(self) -> list[Webhook]:
        return await self.db.read(_webhooks)

    async def deliveries(self, webhook_id: int | None = None, limit: int = 100,
                         before: int | None = None) -> list[Delivery]:
        """Newest first; ``before``: only deliveries older than that id."""
        c = r.webhook_outbox.c
        q = sa.select(r.webhook_outbox).order_by(c.id.desc()).limit(limit)
        if before is not None:
            q = q.where(c.id < before)
        if webhook_id is not None:
            q = q.where(c.webhook_id == webhook_id)

        def go(conn: sa.Connection) -> list[Delivery]:
            return [Delivery(row.id, row.webhook_id, row.event, row.status, row.attempts,
                             row.next_attempt_at, row.last_error, row.delivered_at)
                    for row in conn.execute(q)]
        return await self.db.read(go)

    # -- delivery ----------------------------------------------------------------------------
    async def claim_due(self, now: float, limit: int, until: float) -> list[ClaimedDelivery]:
        """Claim (until ``until``) up to ``limit`` pending deliveries due at ``now`` that no
        live claim holds; another process's claim wins (its rows are not returned)."""
        o, w = r.webhook_outbox.c, r.webhooks.c
        free = sa.or_(o.claimed_until.is_(None), o.claimed_until < now)
        due = (sa.select(o.id, w.url, w.url_sealed, w.secret, o.event, o.payload, o.attempts)
               .select_from(r.webhook_outbox.join(r.webhooks, w.id == o.webhook_id))
               .where(o.status == PENDING, o.next_attempt_at <= now, free)
               .order_by(o.next_attempt_at, o.id).limit(limit))
        rows = await self.db.read(lambda conn: conn.execute(due).all())
        if not rows:  # idle rounds take no write lock
            return []

        def claim(conn: sa.Connection, _batch: Any) -> list[ClaimedDelivery]:
            claimed = []
            for row in rows:
                won = conn.execute(sa.update(r.webhook_outbox).where(
                    o.id == row.id, o.status == PENDING, free).values(
                        claimed_until=until)).rowcount == 1
                if won:
                    claimed.append(ClaimedDelivery(*row))
            return claimed
        return await self.db.write(claim)

    async def record(self, delivery_id: int, outcome: DeliveryOutcome) -> None:
        """What an attempt left: attempts, status, error; the claim ends."""
        values: dict[str, Any] = {"attempts": outcome.attempts, "claimed_until": None,
                                  "last_error": outcome.last_error, "status": outcome.status}
        if outcome.next_attempt_at is not None:
            values["next_attempt_at"] = outcome.next_attempt_at
        if outcome.delivered_at is not None:
            values["delivered_at"] = outcome.delivered_at

        def go(conn: sa.Connection, _batch: Any) -> None:
            conn.execute(sa.update(r.webhook_outbox).where(
                r.webhook_outbox.c.id == delivery_id).values(**values))
        await self.db.write(go)

    # -- stored secrets (server start) -------------------------------------------------------
    def secrets_sync(self) -> list[WebhookSecrets]:
        w = r.webhooks.c
        return self.db.read_sync(lambda conn: [
            WebhookSecrets(row.id, row.url, row.url_sealed, row.secret)
            for row in conn.execute(sa.select(w.id, w.url, w.url_sealed, w.secret)
                                    .order_by(w.id))])

    def rewrite_secrets_sync(
            self, change: Callable[[WebhookSecrets], WebhookSecrets | None]) -> int:
        """In one write transaction, store ``change(row)`` for every webhook it answers a new
        value for (None: unchanged); returns how many rows changed."""
        w = r.webhooks.c

        def go(conn: sa.Connection, _batch: Any) -> int:
            changed = 0
            for row in conn.execute(sa.select(w.id, w.url, w.url_sealed, w.secret)).all():
                new = change(WebhookSecrets(row.id, row.url, row.url_sealed, row.secret))
                if new is None:
                    continue
                conn.execute(sa.update(r.webhooks).where(w.id == row.id).values(
                    url=new.url, url_sealed=new.url_sealed, secret=new.secret))
                changed += 1
            return changed
        return self.db.write_sync(go)
