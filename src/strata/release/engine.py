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
from typing import Any

import sqlalchemy as sa

from strata.errors import Code, RegistryError
from strata.meta.database import Database as MetaDatabase
from strata.meta.rebuild_store import RebuildStore
from strata.registry.service import Registry
from strata.release import schedule, store
from strata.release import webhooks as hooks
from strata.release.db import Database
from strata.release.inventory import Inventory
from strata.release.model import (
    Build,
    BuildStatus,
    ImageStatus,
    Namespace,
    Release,
    ReleaseKind,
    ReleaseStatus,
    Stream,
    TagEvent,
    conflict,
    invalid,
    not_found,
    parse_build_ref,
    parse_tag_ref,
)
from strata.release.notes import render_markdown
from strata.release.nvr import NVR, InvalidNVR
from strata.release.publish import TagWriteHook, apply_release, plan_builds
from strata.release.rebuilds import RebuildLoop
from strata.release.streams import Candidate, StreamViolation, TagKind, classify_tag, plan_rollback

log = logging.getLogger("strata.release")

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
    def __init__(self, engine: sa.Engine, registry: Registry, *,
                 public_host: str = "127.0.0.1:5000", clock: Callable[[], float] = time.time,
                 after_tag_write: TagWriteHook | None = None,
                 webhook_security: hooks.WebhookSecurity | None = None) -> None:
        self.db = Database(engine, clock=clock)
        # The server passes its key (DATA/auth/webhook-key); the default one lives in memory.
        self.webhook_security = webhook_security or hooks.WebhookSecurity.ephemeral()
        self.inventory = Inventory(self.db, registry)
        self.rebuilds = RebuildLoop(RebuildStore(MetaDatabase(engine, clock=clock)))
        self.public_host = public_host
        self.after_tag_write = after_tag_write

    # -- planning --------------------------------------------------------------------------
    def _namespace_plan(self, conn: sa.Connection, ns: Namespace, count: int) -> dict[str, Any]:
        today = self.db.today()
        last = store.last_scheduled(conn, ns.name)
        dates = schedule.upcoming(ns.anchor, ns.interval_days, last, today, max(count, 1))
        builds = store.list_builds(conn, namespace=ns.name, status=BuildStatus.CANDIDATE)
        ready = [b for b in builds if self._active(conn, b)]
        return {
            "namespace": ns.to_json(),
            "last_published": last.isoformat() if last else None,
            "next": [{"date": d.isoformat(), "name": schedule.scheduled_name(ns.name, d),
                      "due": d <= today} for d in dates[:count]],
            "release": schedule.scheduled_name(ns.name, dates[0]),
            "images": [p.to_json() for p in plan_builds(conn, ready)],
            "waiting": [b.to_json() for b in builds if b not in ready],
        }

    @staticmethod
    def _active(conn: sa.Connection, build: Build) -> bool:
        image = store.get_image(conn, build.repository)
        return image is not None and image.status is ImageStatus.ACTIVE

    async def plan(self, namespace: str | None = None, count: int = 3) -> list[dict[str, Any]]:
        """Next scheduled dates per namespace and, for the next one, every tag it would move."""
        def go(conn: sa.Connection) -> list[dict[str, Any]]:
            if namespace is not None:
                ns = store.get_namespace(conn, namespace)
                if ns is None:
                    raise not_found(f"unknown namespace {namespace!r}")
                chosen = [ns]
            else:
                chosen = store.list_namespaces(conn)
            return [self._namespace_plan(conn, ns, count) for ns in chosen]
        return await self.db.read(go)

    # -- scheduled releases ----------------------------------------------------------------
    def _resolve(self, conn: sa.Connection, name: str | None,
                 namespace: str | None) -> tuple[str, str, Any]:
        """(release name, namespace, scheduled date) of the release to publish."""
        if name is not None:
            existing = store.get_release(conn, name)
            if existing is not None:
                if existing.status is ReleaseStatus.PUBLISHED:
                    raise conflict(f"release {name} is already published")
                return name, existing.namespace, existing.scheduled_for
            parsed = schedule.parse_scheduled_name(name)
            if parsed is None:
                raise not_found(f"unknown release {name!r} (scheduled releases are named "
                                "<namespace>-<YYYY-MM-DD>)")
            ns_name, day = parsed
            ns = store.get_namespace(conn, ns_name)
            if ns is None or not schedule.is_on_schedule(ns.anchor, ns.interval_days, day):
                raise not_found(f"{name} is not a scheduled release date")
            return name, ns_name, day
        if namespace is None:
            names = [n.name for n in store.list_namespaces(conn)]
            if len(names) != 1:
                raise invalid("several namespaces (or none): say which with --namespace",
                              {"namespaces": names})
            namespace = names[0]
        ns = store.get_namespace(conn, namespace)
        if ns is None:
            raise not_found(f"unknown namespace {namespace!r}")
        day = schedule.next_date(ns.anchor, ns.interval_days,
                                 store.last_scheduled(conn, ns.name), self.db.today())
        return schedule.scheduled_name(ns.name, day), ns.name, day

    async def publish(self, name: str | None = None, *, namespace: str | None = None,
                      actor: str) -> Release:
        """Publish a scheduled release now (the next one of ``namespace`` if no name)."""
        def go(conn: sa.Connection) -> Release:
            release_name, ns_name, day = self._resolve(conn, name, namespace)
            now = self.db.now()
            last = store.last_scheduled(conn, ns_name)
            if day is not None and last is not None and day <= last:
                raise conflict(f"{release_name} is not after the last published scheduled "
                               f"release of {ns_name} ({last.isoformat()})")
            if store.get_release(conn, release_name) is None:
                store.insert_release(conn, Release(
                    release_name, ReleaseKind.SCHEDULED, ns_name, day, ReleaseStatus.PLANNED,
                    now, None, None, (), None))
            if not store.claim_release(conn, release_name, now, actor):
                raise conflict(f"release {release_name} is already published")
            release = store.get_release(conn, release_name)
            assert release is not None
            builds = [b for b in store.list_builds(conn, namespace=ns_name,
                                                   status=BuildStatus.CANDIDATE)
                      if self._active(conn, b)]
            apply_release(conn, release, builds, at=now, host=self.public_host,
                          after_write=self.after_tag_write)
            return self._release_or_fail(conn, release_name)
        release = await self.db.write(go)
        log.info("published release %s (%s)", release.name, actor)
        return release

    async def publish_due(self, actor: str = "scheduler") -> list[Release]:
        """Publish every scheduled release whose date has come (the server's timer)."""
        def due(conn: sa.Connection) -> list[str]:
            today = self.db.today()
            names = []
            for ns in store.list_namespaces(conn):
                day = schedule.due_date(ns.anchor, ns.interval_days,
                                        store.last_scheduled(conn, ns.name), today)
                if day is not None:
                    names.append(schedule.scheduled_name(ns.name, day))
            return names

        published = []
        for name in await self.db.read(due):
            try:
                published.append(await self.publish(name, actor=actor))
            except RegistryError as exc:
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

        def go(conn: sa.Connection) -> Release:
            now = self.db.now()
            release_name = name or self._oob_name(conn, namespaces[0])
            if store.get_release(conn, release_name) is not None:
                raise conflict(f"release {release_name} already exists")
            current = []
            for build in builds:
                fresh = store.get_build(conn, build.repository, build.digest)
                assert fresh is not None
                if fresh.status is BuildStatus.RELEASED:
                    raise conflict(f"{fresh.nvr} was already released in {fresh.release_name}")
                if not self._active(conn, fresh):
                    raise conflict(f"image {fresh.repository} is not active")
                current.append(fresh)
            release = Release(release_name, ReleaseKind.OOB, namespaces[0], None,
                              ReleaseStatus.PUBLISHED, now, now, actor,
                              tuple(dict.fromkeys(advisories)), reason)
            store.insert_release(conn, release)
            apply_release(conn, release, current, at=now, host=self.public_host,
                          after_write=self.after_tag_write, strict=True)
            return self._release_or_fail(conn, release_name)
        release = await self.db.write(go)
        log.info("published out-of-band release %s (%s)", release.name, actor)
        return release

    def _oob_name(self, conn: sa.Connection, namespace: str) -> str:
        prefix = f"{namespace}-security-{self.db.today().isoformat()}-"
        return f"{prefix}{store.count_releases_like(conn, prefix) + 1}"

    # -- rollback and end-of-life ----------------------------------------------------------
    async def rollback(self, reference: str, *, to: str, reason: str, actor: str) -> TagEvent:
        """Move a floating tag back to an older released build, recording why."""
        repo, tag = parse_tag_ref(reference)
        if not reason.strip():
            raise invalid("a rollback needs a reason")

        def go(conn: sa.Connection) -> TagEvent:
            image = store.get_image(conn, repo.value, lock=True)
            if image is None:
                raise not_found(f"unknown image {repo}")
            target = _parse_target(to, image.name)
            rid = store.repository_id(conn, repo.value)
            digests = store.tag_digests(conn, rid) if rid is not None else {}
            states = store.tag_states(conn, repo.value, image.name, digests)
            digest = digests.get(target.version_release, "")
            try:
                move = plan_rollback(states, tag, Candidate(target, digest))
            except StreamViolation as violation:
                raise conflict(f"{violation} (rule {violation.rule})",
                               {"rule": violation.rule}) from None
            assert rid is not None
            now = self.db.now()
            store.write_tag(conn, rid, tag, move.new_digest, now, actor=actor, release=None,
                            reason=f"rollback: {reason}")
            event = TagEvent(repo.value, tag, move.old_digest, move.new_digest, actor, None,
                             f"rollback: {reason}", now)
            hooks.enqueue(conn, "tag.rolled_back", {
                **event.to_json(), "old_nvr": str(move.old_nvr), "new_nvr": str(move.new_nvr)},
                now)
            return event
        return await self.db.write(go)

    async def eol(self, reference: str, *, actor: str) -> Stream:
        """End a version stream: its tag stays, frozen; releases skip it."""
        repo, version = parse_tag_ref(reference)
        if classify_tag(version) is not TagKind.VERSION:
            raise invalid(f"{version!r} is not a version stream (Name-Version tag)")

        def go(conn: sa.Connection) -> Stream:
            if store.get_image(conn, repo.value, lock=True) is None:
                raise not_found(f"unknown image {repo}")
            for stream in store.list_streams(conn, repo.value):
                if stream.version == version and stream.eol:
                    return stream
            now = self.db.now()
            store.set_eol(conn, repo.value, version, now, actor)
            stream = Stream(repo.value, version, True, now, actor)
            hooks.enqueue(conn, "stream.eol", stream.to_json(), now)
            return stream
        return await self.db.write(go)

    # -- webhooks --------------------------------------------------------------------------
    async def add_webhook(self, url: str, *, events: Sequence[str] = (),
                          secret: str | None = None) -> hooks.Webhook:
        return await self.db.write(
            lambda conn: hooks.add_webhook(conn, url, events, secret, self.db.now(),
                                           self.webhook_security))

    async def webhooks(self) -> list[hooks.Webhook]:
        return await self.db.read(hooks.list_webhooks)

    async def deliveries(self, webhook_id: int | None = None) -> list[dict[str, Any]]:
        return await self.db.read(lambda conn: hooks.list_deliveries(conn, webhook_id))

    # -- reading releases ------------------------------------------------------------------
    @staticmethod
    def _release_or_fail(conn: sa.Connection, name: str) -> Release:
        release = store.get_release(conn, name)
        if release is None:
            raise not_found(f"unknown release {name!r}")
        return release

    async def releases(self, namespace: str | None = None) -> list[Release]:
        return await self.db.read(lambda conn: store.list_releases(conn, namespace))

    @staticmethod
    def _named(conn: sa.Connection, name: str) -> Release:
        """The release ``name``, or the one release a date names (``2026-11-28`` names
        ``f25-2026-11-28`` and ``f25-security-2026-11-28-1``)."""
        release = store.get_release(conn, name)
        if release is not None or _DATE.fullmatch(name) is None:
            return ReleaseEngine._release_or_fail(conn, name)
        matches = store.releases_of_date(conn, name)
        if not matches:
            raise not_found(f"no release is named for {name} (strata release list)")
        if len(matches) > 1:
            raise invalid(f"{name} names {len(matches)} releases: {', '.join(matches)}; "
                          "say which", {"matches": matches})
        return ReleaseEngine._release_or_fail(conn, matches[0])

    async def release(self, name: str) -> dict[str, Any]:
        """A release (by name, or by a date that names one) with its notes and builds."""
        def go(conn: sa.Connection) -> dict[str, Any]:
            release = self._named(conn, name)
            builds = store.list_builds(conn, release_name=release.name,
                                       status=BuildStatus.RELEASED)
            out = release.to_json(with_notes=True)
            if release.notes is not None:  # rendered again: notes stored before user text
                out["notes_markdown"] = render_markdown(release.notes)  # was escaped
            return {**out, "builds": [b.to_json() for b in builds]}
        return await self.db.read(go)


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
