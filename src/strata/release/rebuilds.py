"""The rebuild loop (issue 14): security updates into every release.

* A registered build records what it was built from (:meth:`RebuildLoop.register`): source
  commit, base repository, stream tag and digest, package list.
* When a release moves a base's stream, every active image whose latest build was built on
  that stream is queued for a rebuild (``build_jobs``, ``kind="rebuild"``) -- in the release's
  own transaction (:func:`strata.meta.rebuild_store.queue_dependants`), so a published release
  never misses its rebuilds. :meth:`RebuildLoop.after_release` does the same for a release
  published before (idempotent: a queued rebuild is asked for once).
* ``--rebuild-days-before N`` on a namespace: N days before each scheduled release, every
  active image is queued for a rebuild so updated packages land too
  (:meth:`RebuildLoop.queue_due`, run by the server's scheduler), once per release.
* A rebuild whose source commit, base digest and package list are those of the repository's
  current candidate or current release is *unchanged*: its registration is refused
  (:class:`Unchanged`, CONFLICT with ``detail.unchanged``), so it gets no NVR and is never
  published; the build runner records the job as ``dropped``.
* Images with a registered source only are queued (the runner builds from it); a stale image
  without one is still listed by ``strata image list --stale``.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from strata.meta.rebuild_store import PendingRebuild, RebuildStore
from strata.release import schedule
from strata.release.rebuild import BuildInputs, Reference, StaleImage, unchanged_against

log = logging.getLogger("strata.release")

__all__ = ["MAX_DAYS_BEFORE", "RebuildLoop", "Unchanged"]

MAX_DAYS_BEFORE = 365


class Unchanged(Exception):
    """A rebuild repeats the current candidate or release: nothing to register."""

    def __init__(self, repository: str, same_as: Reference) -> None:
        self.repository = repository
        self.same_as = same_as
        super().__init__(repository)

    def __str__(self) -> str:
        return (f"unchanged: {self.repository} rebuilt from the same source commit, base and "
                f"packages as its current {self.same_as.status} {self.same_as.nvr} "
                f"({self.same_as.digest}); dropped, nothing registered")

    def detail(self) -> dict[str, Any]:
        return {"unchanged": True, "same_as": {
            "nvr": self.same_as.nvr, "digest": self.same_as.digest,
            "status": self.same_as.status}}


class RebuildLoop:
    def __init__(self, store: RebuildStore) -> None:
        self.store = store

    # -- registering builds ----------------------------------------------------------------
    async def check_unchanged(self, repository: str, inputs: BuildInputs) -> None:
        """Raise :class:`Unchanged` if a rebuild with ``inputs`` repeats the current
        candidate or release of ``repository``."""
        same = unchanged_against(inputs, await self.store.current_references(repository))
        if same is not None:
            raise Unchanged(repository, same)

    async def record(self, repository: str, digest: str, inputs: BuildInputs) -> None:
        await self.store.record_inputs(repository, digest, inputs)

    async def inputs(self, pairs: list[tuple[str, str]]) -> dict[tuple[str, str], BuildInputs]:
        return await self.store.inputs_of_many(pairs)

    # -- what is stale and pending ---------------------------------------------------------
    async def stale(self, namespace: str | None = None) -> list[StaleImage]:
        return await self.store.stale(namespace)

    async def pending(self, namespace: str | None = None) -> list[PendingRebuild]:
        return await self.store.pending(namespace)

    # -- queueing --------------------------------------------------------------------------
    async def after_release(self, release_name: str) -> list[int]:
        """Queue the rebuilds of the images built on streams ``release_name`` moved."""
        ids = await self.store.queue_dependants(release_name)
        if ids:
            log.info("release %s queued %d rebuild(s): jobs %s", release_name, len(ids), ids)
        return ids

    async def set_days_before(self, namespace: str, days: int | None) -> bool:
        if days is not None and not 0 <= days <= MAX_DAYS_BEFORE:
            raise ValueError(f"rebuild_days_before must be 0 to {MAX_DAYS_BEFORE}")
        return await self.store.set_days_before(namespace, days)

    async def days_before(self) -> dict[str, int]:
        return await self.store.days_before()

    async def queue_due(self, today: dt.date | None = None) -> dict[str, list[int]]:
        """Queue the pre-release rebuilds of every namespace whose next scheduled release is
        at most ``--rebuild-days-before`` days away (once per release)."""
        today = today or self.store.today()
        queued: dict[str, list[int]] = {}
        for sched in await self.store.schedules():
            day = schedule.next_date(sched.anchor, sched.interval_days, sched.last_scheduled,
                                     today)
            if (day - today).days > sched.days_before:
                continue
            name = schedule.scheduled_name(sched.namespace, day)
            ids = await self.store.queue_prerelease(sched.namespace, day, name)
            if ids is not None:
                log.info("queued %d pre-release rebuild(s) of %s for %s", len(ids),
                         sched.namespace, name)
                queued[sched.namespace] = ids
        return queued
