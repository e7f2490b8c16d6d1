"""Wiring the release engine into the app: the /api/v1 routes and background tasks.

Routes (JSON in and out; errors are the catalogue's ``{"errors": [...]}``), declared in
:mod:`strata.server.api.operations` and described by ``GET /api/v1/openapi.json``
(:mod:`strata.server.api.spec`):

========================================================  ==========================
``GET|POST /api/v1/namespaces``, ``GET|PATCH .../{ns}``    namespaces (PATCH: base_image,
                                                           rebuild_days_before)
``GET|POST /api/v1/images``, ``GET .../{ns}/{name}``       images (with streams, tags;
                                                           ``?stale=1``: base moved);
                                                           ``{ns}`` is ``_`` for a root
                                                           repository (``.../images/_/f25``)
``PATCH .../images/{ns}/{name}``                           source, summary, status
``POST .../images/{ns}/{name}/maintainers``                add/remove a maintainer
``GET .../images/{ns}/{name}/events``                      registrations, approvals, changes
``GET .../images/{ns}/{name}/streams``                     version streams (EOL flags)
``POST .../images/{ns}/{name}/streams/{version}/eol``      end a stream
``GET .../images/{ns}/{name}/history[?tag=&at=]``          tag events of the image
``GET .../images/{ns}/{name}/tags/{tag}/history[?at=]``    one tag; with ``at``: its digest then
``GET|POST /api/v1/reviews``, ``GET .../{id}``              review requests of new images
``POST .../reviews/{id}/comment|approve|reject``           review them
``GET|POST /api/v1/candidates``                            candidate builds
``POST /api/v1/candidates/withdraw``                       take a pending build out
``GET /api/v1/plan[?namespace=&count=]``                   next dates, tag moves and
                                                           pending rebuilds
``GET /api/v1/releases``, ``GET .../{name}``               releases (with notes and builds);
                                                           a date names the one release
                                                           of that day
``GET /api/v1/releases/{name}/notes.md|.json``              release notes
``POST /api/v1/releases/publish``                          publish a scheduled release now
``POST /api/v1/releases/oob``                              out-of-band release
``POST /api/v1/rollback``                                  move a floating tag back
``GET|POST /api/v1/webhooks``, ``GET .../deliveries``      webhooks
``GET /api/v1/namespaces/{ns}/keys``                       release keys (current, retired)
``POST /api/v1/namespaces/{ns}/keys/rotate``               a new current release key
``GET /keys/{ns}.pub``                                     the public keys, PEM
``GET /api/v1/search[?q=&namespace=&status=&eol=]``        full-text image search
``GET /api/v1/search/packages?name=NAME[=VER]``            builds containing a package
``GET /v1/search?q=&n=``                                   Docker v1 search (podman search)
========================================================  ==========================

Background tasks, one set per server process: publish scheduled releases that are due (the
engine guarantees that one process publishes each), queue the pre-release rebuilds of
namespaces with ``rebuild_days_before`` (once per release, whichever process comes first), and
deliver webhook events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from strata.catalog.search import Search
from strata.config import DEFAULT_SOURCE_ALLOW
from strata.meta.database import Database
from strata.meta.key_store import KeyStore
from strata.meta.rebuild_store import RebuildStore
from strata.meta.release_store import ReleaseStore
from strata.meta.search_store import SearchStore
from strata.meta.webhook_store import WebhookStore
from strata.registry.service import Registry
from strata.release.engine import ReleaseEngine, sleep_after_first_write
from strata.release.webhooks import RetryPolicy, WebhookSecurity, WebhookSender
from strata.review.checks import Checker
from strata.server.api import keys, search
from strata.server.api.context import RELEASE_API, ReleaseApi
from strata.server.api.errors import mapping_errors
from strata.server.api.operations import OPERATIONS
from strata.server.api.spec import declare
from strata.trust.attach import Attestations
from strata.trust.keys import Passphrase
from strata.trust.service import TrustService
from strata.trust.signer import TrustSigner

log = logging.getLogger("strata.server")


def add_release_api(app: web.Application, api: ReleaseApi) -> None:
    """The one hook ``create_app`` calls: routes, engine and background tasks."""
    app[RELEASE_API] = api
    app[search.SEARCH] = Search(SearchStore(api.engine.store.db))
    declare(app, OPERATIONS)
    declare(app, search.OPERATIONS)
    # outside /api/v1: a key file for clients' policy (keyPath), not JSON
    app.router.add_get("/keys/{ns}.pub", mapping_errors(keys.public_pem))
    # outside /api/v1: Docker's v1 search, which podman search asks first
    app.router.add_get("/v1/search", search.docker_v1_search)
    app.cleanup_ctx.append(_background)


async def _every(interval: float, what: str, step: Callable[[], Awaitable[object]]) -> None:
    while True:
        try:
            await step()
        except Exception:
            log.exception("%s failed", what)
        await asyncio.sleep(interval)


@contextlib.asynccontextmanager
async def _background_ctx(app: web.Application) -> AsyncIterator[None]:
    api = app[RELEASE_API]
    tasks: list[asyncio.Task[None]] = []
    if api.scheduler_interval > 0:
        tasks.append(asyncio.create_task(_every(
            api.scheduler_interval, "scheduled publishing", api.engine.publish_due)))
        tasks.append(asyncio.create_task(_every(
            api.scheduler_interval, "pre-release rebuilds", api.engine.rebuilds.queue_due)))
    if api.webhook_interval > 0:
        tasks.append(asyncio.create_task(_every(
            api.webhook_interval, "webhook delivery", api.webhooks.deliver_due)))
    yield
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _background(app: web.Application) -> contextlib.AbstractAsyncContextManager[None]:
    return _background_ctx(app)


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


def release_api_from_env(db: Database, registry: Registry, *, default_host: str,
                         webhook_security: WebhookSecurity | None = None,
                         source_allow: tuple[str, ...] = DEFAULT_SOURCE_ALLOW,
                         checker: Checker | None = None,
                         signing: Passphrase | None = None) -> ReleaseApi:
    """The server's release API, tuned by the environment; ``webhook_security``: the server's
    key for webhook secrets and whether deliveries may go to private addresses.

    ``STRATA_PUBLIC_HOST`` (host[:port] in pull commands of release notes; default: that of
    the public URL, ``--public-url`` or the listen address), ``STRATA_SCHEDULER_INTERVAL``
    (seconds, default 60), ``STRATA_WEBHOOK_INTERVAL`` (seconds, default 2),
    ``STRATA_WEBHOOK_RETRY_BASE`` (seconds, default 2) and, for tests only,
    ``STRATA_FAULT_PUBLISH_DELAY`` (seconds to hold the process's first publish transaction
    open after its first tag write).

    ``signing``: the release keys' passphrase (``strata serve`` always has one); else
    ``$STRATA_SIGNING_PASSPHRASE``; with neither, releases are not signed.
    """
    delay = _env_float("STRATA_FAULT_PUBLISH_DELAY", 0.0)
    hook = sleep_after_first_write(delay) if delay > 0 else None
    outbox = WebhookStore(db)
    public_host = os.environ.get("STRATA_PUBLIC_HOST") or default_host
    key_store = KeyStore(db)
    signer = TrustSigner(registry, signing or Passphrase.from_env(), public_host=public_host,
                         store=key_store)
    # The release's signer: the images' cosign signatures, then their SBOM and provenance
    # (signed too when signing is configured), all inside the publish transaction.
    attestations = Attestations(registry, RebuildStore(db), host=public_host,
                                signer=signer if signer.configured else None)
    release = ReleaseEngine(ReleaseStore(db), outbox, registry, public_host=public_host,
                            after_tag_write=hook, webhook_security=webhook_security,
                            signer=attestations)
    sender = WebhookSender(outbox, policy=RetryPolicy(
        base_delay=_env_float("STRATA_WEBHOOK_RETRY_BASE", 2.0)),
        security=release.webhook_security)
    return ReleaseApi(release, sender,
                      scheduler_interval=_env_float("STRATA_SCHEDULER_INTERVAL", 60.0),
                      webhook_interval=_env_float("STRATA_WEBHOOK_INTERVAL", 2.0),
                      source_allow=source_allow, checker=checker,
                      trust=TrustService(key_store, signer))
