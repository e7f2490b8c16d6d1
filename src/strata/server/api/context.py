"""What the /api/v1 handlers reach through the application (no module-level singletons)."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from strata.config import DEFAULT_SOURCE_ALLOW
from strata.meta.review_store import ReviewStore
from strata.release.engine import ReleaseEngine
from strata.release.webhooks import WebhookSender
from strata.review.checks import Checker
from strata.review.service import Reviews
from strata.review.sources import ImageSources
from strata.trust.service import TrustService


@dataclass(frozen=True)
class ReleaseApi:
    """The release engine, the webhook sender and how often the server runs them.

    ``scheduler_interval``: seconds between checks for due scheduled releases (0: never);
    ``webhook_interval``: seconds between webhook delivery rounds (0: never);
    ``source_allow``: the git URLs the server may clone (``strata serve --source-allow``);
    ``checker``: runs the automated checks of review requests (None: none are run).
    """

    engine: ReleaseEngine
    webhooks: WebhookSender
    scheduler_interval: float = 60.0
    webhook_interval: float = 2.0
    source_allow: tuple[str, ...] = DEFAULT_SOURCE_ALLOW
    checker: Checker | None = None
    trust: TrustService | None = None


RELEASE_API = web.AppKey("release_api", ReleaseApi)


def engine_of(request: web.Request) -> ReleaseEngine:
    return request.app[RELEASE_API].engine


def _review_store(api: ReleaseApi) -> ReviewStore:
    # the release engine's database (and clock)
    return ReviewStore(api.engine.store.db)


def sources_of(request: web.Request) -> ImageSources:
    api = request.app[RELEASE_API]
    return ImageSources(_review_store(api), api.source_allow)


def reviews_of(request: web.Request) -> Reviews:
    api = request.app[RELEASE_API]
    return Reviews(_review_store(api), api.source_allow, api.checker)


def trust_of(request: web.Request) -> TrustService:
    trust = request.app[RELEASE_API].trust
    if trust is None:
        raise web.HTTPNotFound()
    return trust
