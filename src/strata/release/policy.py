"""The registry's tag write policy for managed repositories (``TagPolicy`` of the registry).

A repository is managed when its image is in the ``images`` table. For a managed repository,
every tag write through ``/v2/`` (push with a tag, DELETE of a tag, DELETE of a tagged
manifest) is judged by :func:`strata.release.streams.check_registry_write` with
``by_release_engine=False``: an NVR tag may be created once and never moved or deleted, and
floating tags (``130``, ``latest``) are never written. This holds for every account, admin
included: the release engine writes tags inside its own transaction, not through ``/v2/``.

Tags of the cosign / referrers-API fallback scheme (``sha256-<64 hex>`` with an optional
``.sig``, ``.att`` or ``.sbom`` suffix) are not streams and are exempt: signing tools re-push
them as signatures accumulate.

Unmanaged repositories (base images, scratch space) accept any tag write.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import sqlalchemy as sa

from strata.errors import Code, RegistryError
from strata.release import store
from strata.release.model import is_cosign_tag
from strata.release.streams import check_registry_write


class ReleaseTagPolicy:
    """``TagPolicy`` enforcing the stream rules on managed repositories."""

    def __init__(self, engine: sa.Engine, *, unmanaged_ttl: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._engine = engine
        self._unmanaged_ttl = unmanaged_ttl
        self._clock = clock
        self._managed_seen: set[str] = set()
        self._unmanaged_until: dict[str, float] = {}

    def _managed(self, repository: str) -> bool:
        """Whether the image exists. Images are never removed, so a yes is remembered; a no
        is asked again after ``unmanaged_ttl`` seconds (another process may add the image)."""
        if repository in self._managed_seen:
            return True
        now = self._clock()
        if self._unmanaged_until.get(repository, 0.0) > now:
            return False
        with self._engine.connect().execution_options(readonly=True) as conn, conn.begin():
            managed = store.is_managed(conn, repository)
        if managed:
            self._managed_seen.add(repository)
            self._unmanaged_until.pop(repository, None)
        else:
            if len(self._unmanaged_until) > 10_000:
                self._unmanaged_until.clear()
            self._unmanaged_until[repository] = now + self._unmanaged_ttl
        return managed

    def check_sync(self, repository: str, tag: str, current: str | None,
                   new: str | None) -> None:
        if is_cosign_tag(tag):
            return
        if new is not None and new == current:
            return  # re-push of the same digest: a no-op, no need to ask the database
        if not self._managed(repository):
            return
        violation = check_registry_write(tag, current, new, by_release_engine=False)
        if violation is not None:
            raise RegistryError(
                Code.DENIED,
                {"rule": violation.rule, "repository": repository, "tag": tag},
                message=f"{violation.message} (rule {violation.rule})")

    async def check(self, repository: str, tag: str, current: str | None,
                    new: str | None) -> None:
        await asyncio.to_thread(self.check_sync, repository, tag, current, new)
