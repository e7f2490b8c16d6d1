"""Wiring builds from source into the server: the /api/v1/builds routes and the embedded
build runner (``strata serve`` runs up to ``--build-concurrency`` jobs; one process of a
multi-worker server does, the one holding ``builds.lock`` in the data dir).

The runner pushes and registers through the server's own HTTP API acting for the job's
requester: :func:`token_minter` signs a bearer token for that account with the server's key,
granted what the account may do on the repository and the JSON API (bound to the account's
credential generation, so revoking it ends the job's rights at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from strata.auth.accounts import AccountExists
from strata.auth.policy import Principal, Role
from strata.auth.scope import API, PULL, PUSH, READ, REPOSITORY, STRATA, WRITE, Scope
from strata.build.errors import BuildError
from strata.build.jail import JailLimits
from strata.config import ServerSettings
from strata.jobs.runner import POLL_SECONDS, BuildRunner, Credentials, RunnerSettings
from strata.meta.build_store import BuildStore
from strata.meta.database import Database
from strata.meta.errors import Conflict
from strata.meta.rebuild_store import REBUILD_ACTOR
from strata.server.api.builds import BUILDS_API, OPERATIONS, BuildsApi
from strata.server.api.spec import declare
from strata.server.auth import TokenAuth
from strata.server.background import try_lock

log = logging.getLogger("strata.server")

JOB_TOKEN_SECONDS = 6 * 3600  # a build may take long; the token still ends with the account


def embedded_worker_id(settings: ServerSettings) -> str:
    return f"serve@{socket.gethostname()}:{settings.data_dir}"


def token_minter(auth: TokenAuth | None) -> Credentials:
    """Bearer tokens for a job's requester (None with an open registry: nothing to sign).

    The rebuild loop's jobs (requested by :data:`REBUILD_ACTOR`) act for a robot account of
    that name with role ``releng``, created the first time one is needed (its secret is
    never shown: it only ever acts through tokens the server signs); revoking or disabling
    it stops the automatic rebuilds. Any other requester must still be an active account.
    *pull_from*: repositories the token may pull from too, as far as the account may (the
    base repository a build mounts its base layers from instead of uploading them)."""

    async def mint(account: str, repository: str, pull_from: tuple[str, ...]) -> str | None:
        if auth is None:
            return None
        # the key that signs now (it changes with a rotation), for the long life of a job
        issuer = dataclasses.replace(await auth.keys.current_issuer(),
                                     ttl_seconds=JOB_TOKEN_SECONDS)
        principal = await auth.service.principal(account)
        if principal is None and account == REBUILD_ACTOR:
            principal = await _system_robot(auth, account)
        if principal is None or principal.is_anonymous:
            raise BuildError(f"the account {account!r} that asked for this build is gone "
                             "or disabled")
        granted = auth.service.grant(principal, [
            Scope(REPOSITORY, repository, frozenset({PULL, PUSH})),
            Scope(STRATA, API, frozenset({READ, WRITE})),
            *(Scope(REPOSITORY, name, frozenset({PULL})) for name in pull_from)])
        return issuer.issue(account, granted, auth.now(), uid=principal.uid,
                            generation=principal.generation).token
    return mint


async def _system_robot(auth: TokenAuth, name: str) -> Principal | None:
    """The robot *name* (role releng), created if no account has that name yet (a revoked
    or disabled one is left as it is: None)."""
    def create() -> None:
        if auth.service.store.get(name) is not None:
            return
        with contextlib.suppress(AccountExists, Conflict):  # another process made it first
            auth.service.add_robot(name, Role.RELENG)
    await asyncio.to_thread(create)
    return await auth.service.principal(name)


@dataclass(frozen=True)
class BuildService:
    api: BuildsApi
    runner: BuildRunner | None  # None: this process runs no jobs
    lock: Path | None = None  # only the process holding this lock runs jobs


def build_service(settings: ServerSettings, db: Database, auth: TokenAuth | None,
                  registry_url: str) -> BuildService:
    store = BuildStore(db)
    api = BuildsApi(store, settings.source_allow)
    if settings.build_concurrency <= 0:
        return BuildService(api, None)
    runner = BuildRunner(store, RunnerSettings(
        registry_url=registry_url, work_dir=settings.data_dir / "work" / "builds",
        cache_dir=settings.data_dir / "work" / "cache", source_allow=settings.source_allow,
        worker_id=embedded_worker_id(settings), concurrency=settings.build_concurrency,
        poll_seconds=max(0.05, float(os.environ.get("STRATA_BUILD_POLL") or POLL_SECONDS)),
        limits=JailLimits.from_env(os.environ)),
        credentials=token_minter(auth), sources=store.image_source)
    return BuildService(api, runner, settings.data_dir / "builds.lock")


def add_builds(app: web.Application, service: BuildService) -> None:
    app[BUILDS_API] = service.api
    declare(app, OPERATIONS)
    runner, lock = service.runner, service.lock
    if runner is None:
        return

    async def run() -> None:
        while True:  # one process of the server runs the jobs: the one with the lock
            with try_lock(lock) if lock is not None else contextlib.nullcontext(True) as mine:
                if mine:
                    await runner.run_forever()
            await asyncio.sleep(5.0)

    @contextlib.asynccontextmanager
    async def ctx(_app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(run())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.cleanup_ctx.append(lambda a: ctx(a))
