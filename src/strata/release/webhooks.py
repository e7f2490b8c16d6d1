"""Webhooks: events written to an outbox inside the transaction that caused them, then POSTed.

Events are queued in the transaction that caused them
(:func:`strata.meta.webhook_store.enqueue`), so an event exists exactly when what it reports
was committed. :class:`WebhookSender` delivers due outbox rows: JSON ``POST`` with
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

import hashlib
import hmac
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver

from strata.auth.secretbox import SealError, SecretBox
from strata.meta.webhook_store import PENDING, WebhookStore
from strata.release.destinations import (
    DestinationRefused,
    GuardedResolver,
    literal_host_refusal,
    redact_url,
)
from strata.release.model import (
    ClaimedDelivery,
    DeliveryOutcome,
    Webhook,
    WebhookSecrets,
    invalid,
)

EVENTS = frozenset({"release.published", "tag.rolled_back", "stream.eol", "candidate.added",
                    "candidate.withdrawn"})
DELIVERED, FAILED = "delivered", "failed"
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
class RetryPolicy:
    base_delay: float = 2.0
    max_delay: float = 600.0
    max_attempts: int = 10
    timeout: float = 10.0
    claim_seconds: float = 60.0

    def delay(self, attempts: int) -> float:
        return float(min(self.base_delay * 2 ** max(attempts - 1, 0), self.max_delay))


# -- registering and listing -----------------------------------------------------------------
async def add_webhook(store: WebhookStore, url: str, events: Sequence[str],
                      secret: str | None, at: float, security: WebhookSecurity) -> Webhook:
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
    return await store.add(shown, security.box.seal(url) if shown != url else None, events,
                           security.box.seal(secret) if secret else None, at)


async def list_webhooks(store: WebhookStore) -> list[Webhook]:
    """Every webhook, its URL redacted (rows from before sealing may hold credentials)."""
    return [replace(hook, url=redact_url(hook.url)) for hook in await store.webhooks()]


def seal_stored(store: WebhookStore, box: SecretBox) -> int:
    """Seal the secrets and credential-bearing URLs of rows written before sealing existed
    (run once at server start, in one transaction); returns how many rows changed."""
    def seal(row: WebhookSecrets) -> WebhookSecrets | None:
        new = row
        if row.secret and not box.is_sealed(row.secret):
            new = replace(new, secret=box.seal(row.secret))
        shown = redact_url(row.url)
        if row.url_sealed is None and shown != row.url:
            new = replace(new, url=shown, url_sealed=box.seal(row.url))
        return None if new == row else new
    return store.rewrite_secrets_sync(seal)


def sealed_with_other_keys(store: WebhookStore, box: SecretBox) -> set[str]:
    """Ids of the keys, other than ``box``'s, that sealed stored webhook secrets."""
    found: set[str] = set()
    for row in store.secrets_sync():
        found |= {key for key in map(box.key_id_of, (row.url_sealed, row.secret)) if key}
    return found - {box.key_id}


# -- delivery --------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Outcome:
    error: str | None = None
    final: bool = False  # no retry: the destination is refused


class WebhookSender:
    """Delivers due outbox rows. ``security`` must be the server's (the key that sealed the
    rows); ``resolver`` makes the inner name resolver (tests)."""

    def __init__(self, store: WebhookStore, *, policy: RetryPolicy | None = None,
                 clock: Callable[[], float] = time.time,
                 security: WebhookSecurity | None = None,
                 resolver: Callable[[], AbstractResolver] | None = None) -> None:
        self._store = store
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

    def _outcome(self, item: ClaimedDelivery, outcome: _Outcome) -> DeliveryOutcome:
        """What the row records after an attempt: delivered, failed for good, or retried
        after the backoff."""
        now = self._clock()
        attempts = item.attempts + 1
        if outcome.error is None:
            return DeliveryOutcome(attempts, DELIVERED, None, delivered_at=now)
        if outcome.final or attempts >= self.policy.max_attempts:
            return DeliveryOutcome(attempts, FAILED, outcome.error)
        return DeliveryOutcome(attempts, PENDING, outcome.error,
                               next_attempt_at=now + self.policy.delay(attempts))

    async def _post(self, session: aiohttp.ClientSession, item: ClaimedDelivery) -> _Outcome:
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

    async def claim(self, limit: int) -> list[ClaimedDelivery]:
        """Claim up to ``limit`` due deliveries for ``policy.claim_seconds`` (rows another
        sender holds a live claim on are not returned)."""
        now = self._clock()
        return await self._store.claim_due(now, limit, now + self.policy.claim_seconds)

    async def deliver_due(self, limit: int = 50) -> int:
        """Send every due delivery once; returns how many were sent successfully."""
        claimed = await self.claim(limit)
        if not claimed:
            return 0
        delivered = 0
        async with self.session() as session:
            for item in claimed:
                outcome = await self._post(session, item)
                await self._store.record(item.id, self._outcome(item, outcome))
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
