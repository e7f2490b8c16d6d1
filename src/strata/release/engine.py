"""The release engine: plan, publish (scheduled and out-of-band), roll back, end streams.

A use-case layer with no HTTP in it; the JSON API and the CLI sit on top. Every publish is one
database transaction (:func:`strata.release.publish.apply_release`).

Concurrency: a scheduled release is claimed with a conditional UPDATE of its row
(``status = 'planned'`` -> ``'published'``) inside the publish transaction, and its row is
created with its name as primary key, so when several server processes find the same release
due, exactly one publishes it; the others get CONFLICT and move on.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from strata.errors import Code
from strata.meta.rebuild_store import RebuildStore
from strata.meta.release_store import ReleaseReader, ReleaseStore, ReleaseWriter
from strata.meta.webhook_store import WebhookStore
from strata.registry.service import Registry
from strata.release import schedule
from strata.release import webhooks as hooks
from strata.release.errors import ReleaseError
from strata.release.inventory import Inventory, write
from strata.release.model import (
    Build,
    BuildStatus,
    Delivery,
    ImageStatus,
    Namespace,
    Release,
    ReleaseDetails,
    ReleaseKind,
    ReleaseStatus,
    Stream,
    TagEvent,
    TagMove,
    Webhook,
    conflict,
    invalid,
    not_found,
    parse_build_ref,
    parse_tag_ref,
)
from strata.release.notes import render_markdown
from strata.release.nvr import NVR, InvalidNVR
from strata.release.publish import (
    NamespacePlan,
    ReleaseSigner,
    ScheduledDate,
    TagWriteHook,
    apply_release,
    plan_builds,
)
from strata.release.rebuilds import RebuildLoop
from strata.release.streams import Candidate, StreamViolation, TagKind, classify_tag, plan_rollback
from strata.release.tagstates import tag_states

log = logging.getLogger("strata.release")
T = TypeVar("T")

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def sleep_after_first_write(seconds: float) -> TagWriteHook:
    """Test-only fault: hold the publish transaction open after its first tag write."""
    done: list[bool] = []

    def hook(repository: str, tag: str) -> None:
        if not done:
            done.append(True)
            log.warning("fault injection: sleeping %.1fs inside the publish transaction "
                        "after writing %s:%s", seconds, repository, tag)
            time.sleep(seconds)
    return hook


class ReleaseEngine:
    """``store`` and ``webhook_store`` share one :class:`strata.meta.database.Database`,
    whose clock is the engine's."""

    def __init__(self, store: ReleaseStore, webhook_store: WebhookStore, registry: Registry, *,
                 public_host: str = "127.0.0.1:5000",
                 after_tag_write: TagWriteHook | None = None,
                 webhook_security: hooks.WebhookSecurity | None = None,
                 signer: ReleaseSigner | None = None) -> None:
        self.store = store
        # Signs every released digest inside the publish transaction and attaches its SBOM
        # and provenance (the server's strata.trust.attach.Attestations around
        # strata.trust.signer.TrustSigner); None: neither (engine tests).
        self.signer = signer
        self.webhook_store = webhook_store
        # The server passes its key (DATA/auth/webhook-key); the default one lives in memory.
        self.webhook_security = webhook_security or hooks.WebhookSecurity.ephemeral()
        self.inventory = Inventory(store, registry)
        self.rebuilds = RebuildLoop(RebuildStore(store.db))
        self.public_host = public_host
        self.after_tag_write = after_tag_write

    async def _write(self, fn: Callable[[ReleaseWriter], T]) -> T:
        return await write(self.store, fn)

    # -- planning --------------------------------------------------------------------------
    def _namespace_plan(self, tx: ReleaseReader, ns: Namespace, count: int) -> NamespacePlan:
        today = self.store.today()
        last = tx.last_scheduled(ns.name)
        dates = schedule.upcoming(ns.anchor, ns.interval_days, last, today, max(count, 1))
        builds = tx.builds(namespace=ns.name, status=BuildStatus.CANDIDATE)
        ready = [b for b in builds if self._active(tx, b)]
        return NamespacePlan(
            ns, last,
            tuple(ScheduledDate(d, schedule.scheduled_name(ns.name, d), d <= today)
                  for d in dates[:count]),
            schedule.scheduled_name(ns.name, dates[0]), tuple(plan_builds(tx, ready)),
            tuple(b for b in builds if b not in ready))

    @staticmethod
    def _active(tx: ReleaseReader, build: Build) -> bool:
        image = tx.image(build.repository)
        return image is not None and image.status is ImageStatus.ACTIVE

    async def plan(self, namespace: str | None = None, count: int = 3) -> list[NamespacePlan]:
        """Next scheduled dates per namespace and, for the next one, every tag it would move."""
        def go(tx: ReleaseReader) -> list[NamespacePlan]:
            if namespace is not None:
                ns = tx.namespace(namespace)
                if ns is None:
                    raise not_found(f"unknown namespace {namespace!r}")
                chosen = [ns]
            else:
                chosen = tx.namespaces()
            return [self._namespace_plan(tx, ns, count) for ns in chosen]
        return await self.store.read(go)

    # -- scheduled releases ----------------------------------------------------------------
    def _resolve(self, tx: ReleaseReader, name: str | None,
                 namespace: str | None) -> tuple[str, str, Any]:
        """(release name, namespace, scheduled date) of the release to publish."""
        if name is not None:
            existing = tx.release(name)
            if existing is not None:
                if existing.status is ReleaseStatus.PUBLISHED:
                    raise conflict(f"release {name} is already published")
                return name, existing.namespace, existing.scheduled_for
            parsed = schedule.parse_scheduled_name(name)
            if parsed is None:
                raise not_found(f"unknown release {name!r} (scheduled releases are named "
                                "<namespace>-<YYYY-MM-DD>)")
            ns_name, day = parsed
            ns = tx.namespace(ns_name)
            if ns is None or not schedule.is_on_schedule(ns.anchor, ns.interval_days, day):
                raise not_found(f"{name} is not a scheduled release date")
            return name, ns_name, day
        if namespace is None:
            names = [n.name for n in tx.namespaces()]
            if len(names) != 1:
                raise invalid("several namespaces (or none): say which with --namespace",
                              {"namespaces": names})
            namespace = names[0]
        ns = tx.namespace(namespace)
        if ns is None:
            raise not_found(f"unknown namespace {namespace!r}")
        day = schedule.next_date(ns.anchor, ns.interval_days,
                                 tx.last_scheduled(ns.name), self.store.today())
        return schedule.scheduled_name(ns.name, day), ns.name, day

    async def publish(self, name: str | None = None, *, namespace: str | None = None,
                      actor: str) -> Release:
        """Publish a scheduled release now (the next one of ``namespace`` if no name)."""
        if self.signer is not None:
            def pending(tx: ReleaseReader) -> list[Build]:
                ns_name = self._resolve(tx, name, namespace)[1]
                return tx.builds(namespace=ns_name, status=BuildStatus.CANDIDATE)
            await self.signer.prepare(await self.store.read(pending))

        def go(tx: ReleaseWriter) -> Release:
            release_name, ns_name, day = self._resolve(tx, name, namespace)
            now = self.store.now()
            last = tx.last_scheduled(ns_name)
            if day is not None and last is not None and day <= last:
                raise conflict(f"{release_name} is not after the last published scheduled "
                               f"release of {ns_name} ({last.isoformat()})")
            if tx.release(release_name) is None:
                tx.add_release(Release(
                    release_name, ReleaseKind.SCHEDULED, ns_name, day, ReleaseStatus.PLANNED,
                    now, None, None, (), None))
            if not tx.claim_release(release_name, now, actor):
                raise conflict(f"release {release_name} is already published")
            release = tx.release(release_name)
            assert release is not None
            builds = [b for b in tx.builds(namespace=ns_name, status=BuildStatus.CANDIDATE)
                      if self._active(tx, b)]
            apply_release(tx, release, builds, at=now, host=self.public_host,
                          after_write=self.after_tag_write, signer=self.signer)
            return self._release_or_fail(tx, release_name)
        release = await self._write(go)
        log.info("published release %s (%s)", release.name, actor)
        return release

    async def publish_due(self, actor: str = "scheduler") -> list[Release]:
        """Publish every scheduled release whose date has come (the server's timer)."""
        def due(tx: ReleaseReader) -> list[str]:
            today = self.store.today()
            names = []
            for ns in tx.namespaces():
                day = schedule.due_date(ns.anchor, ns.interval_days,
                                        tx.last_scheduled(ns.name), today)
                if day is not None:
                    names.append(schedule.scheduled_name(ns.name, day))
            return names

        published = []
        for name in await self.store.read(due):
            try:
                published.append(await self.publish(name, actor=actor))
            except ReleaseError as exc:
                if exc.code is not Code.CONFLICT:
                    raise
                log.warning("scheduled release %s not published: %s", name, exc.message)
        return published

    # -- out-of-band releases --------------------------------------------------------------
    async def oob(self, references: Sequence[str], *, advisories: Sequence[str], reason: str,
                  actor: str, name: str | None = None) -> Release:
        """Publish the given builds at once, as an out-of-band (security) release."""
        if not references:
            raise invalid("an out-of-band release needs at least one build")
        if not advisories or not all(a.strip() for a in advisories):
            raise invalid("an out-of-band release needs at least one advisory ID")
        if not reason.strip():
            raise invalid("an out-of-band release needs a reason")
        refs = [parse_build_ref(text) for text in references]
        namespaces = sorted({(await self.inventory.namespace_of(repo.value)).name
                             for repo, _ in refs})
        if len(namespaces) != 1:
            raise invalid(f"one out-of-band release covers one namespace, got {namespaces}")
        builds = [await self.inventory.add_candidate(repo.value, str(digest), actor=actor,
                                                     advisories=advisories, reason=reason)
                  for repo, digest in refs]
        if self.signer is not None:
            await self.signer.prepare(builds)

        def go(tx: ReleaseWriter) -> Release:
            now = self.store.now()
            release_name = name or self._oob_name(tx, namespaces[0])
            if tx.release(release_name) is not None:
                raise conflict(f"release {release_name} already exists")
            current = []
            for build in builds:
                fresh = tx.build(build.repository, build.digest)
                assert fresh is not None
                if fresh.status is BuildStatus.RELEASED:
                    raise conflict(f"{fresh.nvr} was already released in {fresh.release_name}")
                if not self._active(tx, fresh):
                    raise conflict(f"image {fresh.repository} is not active")
                current.append(fresh)
            release = Release(release_name, ReleaseKind.OOB, namespaces[0], None,
                              ReleaseStatus.PUBLISHED, now, now, actor,
                              tuple(dict.fromkeys(advisories)), reason)
            tx.add_release(release)
            apply_release(tx, release, current, at=now, host=self.public_host,
                          after_write=self.after_tag_write, strict=True, signer=self.signer)
            return self._release_or_fail(tx, release_name)
        release = await self._write(go)
        log.info("published out-of-band release %s (%s)", release.name, actor)
        return release

    def _oob_name(self, tx: ReleaseReader, namespace: str) -> str:
        prefix = f"{namespace}-security-{self.store.today().isoformat()}-"
        return f"{prefix}{tx.count_releases_like(prefix) + 1}"

    # -- rollback and end-of-life ----------------------------------------------------------
    async def rollback(self, reference: str, *, to: str, reason: str, actor: str) -> TagEvent:
        """Move a floating tag back to an older released build, recording why."""
        repo, tag = parse_tag_ref(reference)
        if not reason.strip():
            raise invalid("a rollback needs a reason")

        def go(tx: ReleaseWriter) -> TagEvent:
            image = tx.image(repo.value, lock=True)
            if image is None:
                raise not_found(f"unknown image {repo}")
            target = _parse_target(to, image.name)
            tags = tx.repository_tags(repo.value, image.name)
            digests = tags.tags
            states = tag_states(tags)
            digest = digests.get(target.version_release, "")
            try:
                move = plan_rollback(states, tag, Candidate(target, digest))
            except StreamViolation as violation:
                raise conflict(f"{violation} (rule {violation.rule})",
                               {"rule": violation.rule}) from None
            now = self.store.now()
            tx.move_tag(TagMove(repo.value, tag, move.new_digest), now, actor=actor,
                        release=None, reason=f"rollback: {reason}")
            event = TagEvent(repo.value, tag, move.old_digest, move.new_digest, actor, None,
                             f"rollback: {reason}", now)
            tx.enqueue("tag.rolled_back", {
                **event.to_json(), "old_nvr": str(move.old_nvr), "new_nvr": str(move.new_nvr)},
                now)
            return event
        return await self._write(go)

    async def eol(self, reference: str, *, actor: str) -> Stream:
        """End a version stream: its tag stays, frozen; releases skip it."""
        repo, version = parse_tag_ref(reference)
        if classify_tag(version) is not TagKind.VERSION:
            raise invalid(f"{version!r} is not a version stream (Name-Version tag)")

        def go(tx: ReleaseWriter) -> Stream:
            if tx.image(repo.value, lock=True) is None:
                raise not_found(f"unknown image {repo}")
            for stream in tx.streams(repo.value):
                if stream.version == version and stream.eol:
                    return stream
            now = self.store.now()
            tx.set_eol(repo.value, version, now, actor)
            stream = Stream(repo.value, version, True, now, actor)
            tx.enqueue("stream.eol", stream.to_json(), now)
            return stream
        return await self._write(go)

    # -- webhooks --------------------------------------------------------------------------
    async def add_webhook(self, url: str, *, events: Sequence[str] = (),
                          secret: str | None = None) -> Webhook:
        return await hooks.add_webhook(self.webhook_store, url, events, secret,
                                       self.store.now(), self.webhook_security)

    async def webhooks(self) -> list[Webhook]:
        return await hooks.list_webhooks(self.webhook_store)

    async def deliveries(self, webhook_id: int | None = None, *, limit: int = 100,
                         before: int | None = None) -> list[Delivery]:
        return await self.webhook_store.deliveries(webhook_id, limit=limit, before=before)

    # -- reading releases ------------------------------------------------------------------
    @staticmethod
    def _release_or_fail(tx: ReleaseReader, name: str) -> Release:
        release = tx.release(name)
        if release is None:
            raise not_found(f"unknown release {name!r}")
        return release

    async def releases(self, namespace: str | None = None, *, limit: int = 100,
                       after: str | None = None) -> list[Release]:
        """Newest first (published, else created), at most ``limit``; ``after``: those that
        come after that release in this order (NOT_FOUND if there is no such release)."""
        def go(tx: ReleaseReader) -> list[Release]:
            cursor = None if after is None else self._release_or_fail(tx, after)
            return tx.releases(namespace, limit=limit, after=cursor)
        return await self.store.read(go)

    @staticmethod
    def _named(tx: ReleaseReader, name: str) -> Release:
        """The release ``name``, or the one release a date names (``2026-11-28`` names
        ``f25-2026-11-28`` and ``f25-security-2026-11-28-1``)."""
        release = tx.release(name)
        if release is not None or _DATE.fullmatch(name) is None:
            return ReleaseEngine._release_or_fail(tx, name)
        matches = tx.releases_of_date(name)
        if not matches:
            raise not_found(f"no release is named for {name} (strata release list)")
        if len(matches) > 1:
            raise invalid(f"{name} names {len(matches)} releases: {', '.join(matches)}; "
                          "say which", {"matches": matches})
        return ReleaseEngine._release_or_fail(tx, matches[0])

    async def release(self, name: str) -> ReleaseDetails:
        """A release (by name, or by a date that names one) with its notes and builds."""
        def go(tx: ReleaseReader) -> ReleaseDetails:
            release = self._named(tx, name)
            builds = tx.builds(release_name=release.name, status=BuildStatus.RELEASED)
            markdown = release.notes_md
            if release.notes is not None:  # rendered again: notes stored before user text
                markdown = render_markdown(release.notes)  # was escaped
            return ReleaseDetails(release, markdown, tuple(builds))
        return await self.store.read(go)


def _parse_target(text: str, image_name: str) -> NVR:
    """``130-1.f25docker``, ``cockpit-130-1.f25docker`` or ``f25/cockpit-130-1.f25docker``."""
    try:
        if text.count("-") == 1:
            version, release = text.split("-")
            return NVR(image_name, version, release)
        nvr = NVR.parse(text)
    except InvalidNVR as exc:
        raise invalid(f"--to {text!r}: {exc}") from None
    if nvr.name.rsplit("/", 1)[-1] != image_name:
        raise invalid(f"--to {text!r} names another image than {image_name!r}")
    return NVR(image_name, nvr.version, nvr.release)
