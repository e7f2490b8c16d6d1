"""Webhooks: events written to an outbox inside the transaction that caused them, then POSTed.

:func:`enqueue` runs in the caller's transaction, so an event exists exactly when what it
reports was committed. :class:`WebhookSender` delivers due outbox rows: JSON ``POST`` with
``X-Strata-Event`` and ``X-Strata-Delivery`` headers and, when the webhook has a secret,
``X-Strata-Signature: sha256=<HMAC-SHA256 of the body>``. A 2xx answer delivers; anything
else is retried with exponential backoff (``base * 2**(attempt-1)``, capped) until
``max_attempts``, then the row is ``failed``. Several server processes may run senders: a row
is claimed with a conditional UPDATE (``claimed_until``) before it is sent, so one process
sends it (at-least-once: a process that dies after sending and before recording is retried).

Secrets at rest (:class:`WebhookSecurity`): the HMAC secret, and the URL when it carries
credentials (``user:password@``, a ``token=`` parameter…), are stored sealed with the server
key (:class:`strata.auth.secretbox.SecretBox`); the ``url`` column holds only the redacted URL
that everyone is shown. Rows from before sealing are sealed by :func:`seal_stored` when the
server starts. Deliveries go only to global addresses unless the server allows private ones
(:mod:`strata.release.destinations`); a refused destination fails its delivery at once, with
the reason as its ``last_error``.
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
from urllib.parse import urlsplit

import aiohttp
import sqlalchemy as sa
from aiohttp.abc import AbstractResolver

from strata.auth.secretbox import SealError, SecretBox
from strata.meta import release_tables as r
from strata.meta.connection import locked_begin
from strata.release.destinations import (
    DestinationRefused,
    GuardedResolver,
    literal_host_refusal,
    redact_url,
)
from strata.release.model import invalid, iso_time

EVENTS = frozenset({"release.published", "tag.rolled_back", "stream.eol", "candidate.added",
                    "candidate.withdrawn"})
PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
MAX_URL, MAX_SECRET = 2048, 1024


@dataclass(frozen=True)
class WebhookSecurity:
    """How the server keeps webhook secrets (``box``) and whether deliveries may go to
    loopback, link-local and private addresses (``allow_private``)."""

    box: SecretBox
    allow_private: bool = False

    @classmethod
    def ephemeral(cls, *, allow_private: bool = False) -> WebhookSecurity:
        """A key that lives in this process only (tests; rows it seals die with it)."""
        return cls(SecretBox.generate(), allow_private)


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
                at: float, security: WebhookSecurity) -> Webhook:
    shown = redact_url(url)
    if not url.startswith(("http://", "https://")):
        raise invalid(f"webhook URL must be http:// or https://, not {shown!r}")
    if len(url) > MAX_URL or len(secret or "") > MAX_SECRET:
        raise invalid(f"webhook URL (at most {MAX_URL} characters) or secret (at most "
                      f"{MAX_SECRET}) too long")
    refusal = None if security.allow_private else literal_host_refusal(url)
    if refusal is not None:
        raise invalid(f"webhook URL {shown}: {refusal}")
    unknown = sorted(set(events) - EVENTS)
    if unknown:
        raise invalid(f"unknown event(s) {', '.join(unknown)}; known: {', '.join(sorted(EVENTS))}")
    result = conn.execute(sa.insert(r.webhooks).values(
        url=shown, url_sealed=security.box.seal(url) if shown != url else None,
        events=json.dumps(sorted(set(events))),
        secret=security.box.seal(secret) if secret else None, active=True, created_at=at))
    pk = result.inserted_primary_key
    assert pk is not None
    return Webhook(int(pk[0]), shown, tuple(sorted(set(events))), True, at)


def list_webhooks(conn: sa.Connection) -> list[Webhook]:
    rows = conn.execute(sa.select(r.webhooks).order_by(r.webhooks.c.id))
    return [Webhook(row.id, redact_url(row.url), tuple(json.loads(row.events)),
                    bool(row.active), row.created_at) for row in rows]


def seal_stored(conn: sa.Connection, box: SecretBox) -> int:
    """Seal the secrets and credential-bearing URLs of rows written before sealing existed
    (run once at server start, in one transaction); returns how many rows changed."""
    w = r.webhooks.c
    changed = 0
    for row in conn.execute(sa.select(w.id, w.url, w.url_sealed, w.secret)).all():
        values: dict[str, Any] = {}
        if row.secret and not box.is_sealed(row.secret):
            values["secret"] = box.seal(row.secret)
        shown = redact_url(row.url)
        if row.url_sealed is None and shown != row.url:
            values.update(url=shown, url_sealed=box.seal(row.url))
        if values:
            conn.execute(sa.update(r.webhooks).where(w.id == row.id).values(**values))
            changed += 1
    return changed


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


def sealed_with_other_keys(conn: sa.Connection, box: SecretBox) -> set[str]:
    """Ids of the keys, other than ``box``'s, that sealed stored webhook secrets."""
    w = r.webhooks.c
    found: set[str] = set()
    for row in conn.execute(sa.select(w.url_sealed, w.secret)).all():
        found |= {key for key in map(box.key_id_of, (row.url_sealed, row.secret)) if key}
    return found - {box.key_id}


# -- delivery --------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Claimed:
    id: int
    url: str  # redacted
    url_sealed: str | None
    secret: str | None  # sealed
    event: str
    payload: str
    attempts: int


@dataclass(frozen=True)
class _Outcome:
    error: str | None = None
    final: bool = False  # no retry: the destination is refused


class WebhookSender:
    """Delivers due outbox rows. ``security`` must be the server's (the key that sealed the
    rows); ``resolver`` makes the inner name resolver (tests)."""

    def __init__(self, db: sa.Engine, *, policy: RetryPolicy | None = None,
                 clock: Callable[[], float] = time.time,
                 security: WebhookSecurity | None = None,
                 resolver: Callable[[], AbstractResolver] | None = None) -> None:
        self._db = db
        self.policy = policy or RetryPolicy()
        self._clock = clock
        self.security = security or WebhookSecurity.ephemeral()
        self._resolver = resolver

    def session(self) -> aiohttp.ClientSession:
        """The HTTP client of a delivery round: names resolve through the address guard
        (unless private addresses are allowed), and connections go to the addresses it
        checked."""
        inner = self._resolver() if self._resolver else None
        if self.security.allow_private:
            connector = aiohttp.TCPConnector(resolver=inner) if inner else aiohttp.TCPConnector()
        else:
            connector = aiohttp.TCPConnector(resolver=GuardedResolver(inner))
        return aiohttp.ClientSession(connector=connector, trust_env=False)

    def _claim(self, limit: int) -> list[_Claimed]:
        now = self._clock()
        o, w = r.webhook_outbox.c, r.webhooks.c
        free = sa.or_(o.claimed_until.is_(None), o.claimed_until < now)
        claimed: list[_Claimed] = []
        due = (sa.select(o.id, w.url, w.url_sealed, w.secret, o.event, o.payload, o.attempts)
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

    def _finish(self, item: _Claimed, outcome: _Outcome) -> None:
        now = self._clock()
        attempts = item.attempts + 1
        values: dict[str, Any] = {"attempts": attempts, "claimed_until": None,
                                  "last_error": outcome.error}
        if outcome.error is None:
            values.update(status=DELIVERED, delivered_at=now)
        elif outcome.final or attempts >= self.policy.max_attempts:
            values.update(status=FAILED)
        else:
            values.update(next_attempt_at=now + self.policy.delay(attempts))
        with locked_begin(self._db) as conn:
            conn.execute(sa.update(r.webhook_outbox).where(
                r.webhook_outbox.c.id == item.id).values(**values))

    async def _post(self, session: aiohttp.ClientSession, item: _Claimed) -> _Outcome:
        box = self.security.box
        try:
            url = box.open(item.url_sealed) if item.url_sealed else item.url
            secret = box.open(item.secret) if item.secret else None
        except SealError as exc:
            return _Outcome(f"cannot open the webhook's sealed URL or secret: {exc}")
        refusal = None if self.security.allow_private else literal_host_refusal(url)
        if refusal is not None:
            return _Outcome(refusal, final=True)
        body = item.payload.encode()
        headers = {"Content-Type": "application/json", "X-Strata-Event": item.event,
                   "X-Strata-Delivery": str(item.id), "User-Agent": "strata-webhooks"}
        if secret:
            mac = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
            headers["X-Strata-Signature"] = f"sha256={mac}"
        try:
            timeout = aiohttp.ClientTimeout(total=self.policy.timeout)
            async with session.post(url, data=body, headers=headers,
                                    timeout=timeout, allow_redirects=False) as resp:
                await resp.read()
                return _Outcome(None if 200 <= resp.status < 300 else f"HTTP {resp.status}")
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, DestinationRefused):
                return _Outcome(str(exc.os_error), final=True)
            return _Outcome(_error_text(exc, url))
        except (aiohttp.ClientError, TimeoutError) as exc:
            return _Outcome(_error_text(exc, url))

    async def deliver_due(self, limit: int = 50) -> int:
        """Send every due delivery once; returns how many were sent successfully."""
        claimed = await asyncio.to_thread(self._claim, limit)
        if not claimed:
            return 0
        delivered = 0
        async with self.session() as session:
            for item in claimed:
                outcome = await self._post(session, item)
                await asyncio.to_thread(self._finish, item, outcome)
                delivered += outcome.error is None
        return delivered


def _error_text(exc: BaseException, url: str) -> str:
    """What went wrong, for ``last_error``: never the URL's credentials."""
    text = f"{type(exc).__name__}: {exc}".replace(url, redact_url(url))
    parts = urlsplit(url)
    for secret in (parts.password, parts.username):
        if secret:
            text = text.replace(secret, "***")
    return text[:500]
