"""Namespaces, images, candidate builds, streams and tag history (use-cases, no HTTP).

Decisions:

* A namespace's default anchor is ``today + interval_days``: a new namespace's first scheduled
  release is one interval away, not today.
* Images may be added explicitly (``strata image add``, with maintainers and source) or are
  created ``active`` by their first candidate. A repository is *managed* (the registry's
  stream write policy applies) from the moment its image exists, or as soon as its first path
  component is a registered namespace (:func:`strata.meta.tagwrite.is_managed`).
* ``candidate add`` reads the NVR labels of the build from the registry. The ``name`` label
  may be the image name (``cockpit``) or the repository (``f25/cockpit``); the NVR is stored
  with the image name. When the namespace has a dist tag, the ``release`` label must end with
  ``.<dist tag>`` (``1.f25docker``). The NVR must be usable as tags. Registering the same
  digest again answers the existing build; the same NVR with another digest is a CONFLICT.
  Retired images take no candidates, and a withdrawn build cannot be registered again.
* A repository at the root of the registry (``fedora``, ``f25``: a base image) is an image
  like any other once it has an image row, which says its namespace: given when the image is
  added (``strata image add fedora --namespace f25``, ``strata base import``), or the
  namespace of the same name (``f25`` in ``f25``). :func:`namespace_for` is the one lookup.
* ``candidate withdraw`` takes a pending build out of the next release: status
  ``withdrawn``, with who, when and why on the build's record (``candidate list`` shows it),
  and the webhook event ``candidate.withdrawn``. Until then the registry refuses to delete
  a pending build's manifest or blobs (:mod:`strata.release.policy`).
* ``candidate add`` warns (:meth:`Inventory.stream_warnings`) when the build would move no
  stream: not newer than the current release of its version, or its stream is end-of-life.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Sequence
from typing import TypeVar

from strata.errors import Code, RegistryError
from strata.meta.errors import Conflict
from strata.meta.release_store import ReleaseReader, ReleaseStore, ReleaseWriter
from strata.oci.digest import Digest
from strata.oci.names import RepositoryName
from strata.registry.service import Registry
from strata.release import schedule
from strata.release.errors import CONCURRENT_CHANGE, from_registry
from strata.release.labels import read_labels
from strata.release.model import (
    Build,
    BuildStatus,
    Image,
    ImageDetails,
    ImageStatus,
    Namespace,
    Stream,
    TagHistory,
    TagInfo,
    conflict,
    image_name_of,
    invalid,
    not_found,
    parse_build_ref,
    parse_repository,
    split_repository,
)
from strata.release.nvr import NVR, InvalidNVR
from strata.release.streams import Candidate, StreamViolation, TagKind, classify_tag, plan_release
from strata.release.tagstates import tag_states
from strata.review.policy import candidate_refusal

_NAMESPACE = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$")
_DIST_TAG = re.compile(r"^[A-Za-z0-9._]*$")


T = TypeVar("T")


def _namespace_or_fail(tx: ReleaseReader, name: str) -> Namespace:
    ns = tx.namespace(name)
    if ns is None:
        raise not_found(f"unknown namespace {name!r} (strata namespace add {name} ...)")
    return ns


def _image_or_fail(tx: ReleaseReader, repository: str) -> Image:
    image = tx.image(repository)
    if image is None:
        raise not_found(f"unknown image {repository!r}")
    return image


def namespace_for(tx: ReleaseReader, repo: RepositoryName,
                  given: str | None = None) -> Namespace:
    """The namespace ``repo`` belongs to (``given``, if any, must agree).

    ``f25/cockpit``: ``f25``. A root repository (``fedora``): its image's namespace, else
    ``given``, else the namespace named like it (``f25``).
    """
    prefix, _ = split_repository(repo)
    if prefix is not None:
        if given is not None and given != prefix:
            raise invalid(f"repository {repo} is in namespace {prefix}, not {given}")
        return _namespace_or_fail(tx, prefix)
    image = tx.image(repo.value)
    if image is not None:
        if given is not None and given != image.namespace:
            raise conflict(f"image {repo} belongs to namespace {image.namespace}, not {given}")
        return _namespace_or_fail(tx, image.namespace)
    if given is not None:
        return _namespace_or_fail(tx, given)
    ns = tx.namespace(repo.value)
    if ns is None:
        raise not_found(f"root repository {repo} belongs to no namespace (add it with "
                        f"strata image add {repo} --namespace NS)")
    return ns


def _gate(repository: str, image: Image | None, force_reason: str | None) -> None:
    refusal = candidate_refusal(repository, image.status if image is not None else None,
                                forced=force_reason is not None)
    if refusal is not None:
        raise RegistryError(Code.DENIED, {"repository": repository}, message=refusal)


def _not_withdrawn(build: Build) -> None:
    if build.status is BuildStatus.WITHDRAWN:
        raise conflict(f"{build.repository}@{build.digest} ({build.nvr}) was withdrawn by "
                       f"{build.withdrawn_by}: {build.withdrawn_reason}; its NVR stays taken, "
                       "build again for a new release number")


def check_nvr(labels: dict[str, str], repo: RepositoryName, ns: Namespace) -> NVR:
    """The build's NVR from its labels, checked against its repository and namespace."""
    name = image_name_of(repo)
    try:
        nvr = NVR.from_labels(labels)
    except InvalidNVR as exc:
        raise invalid(f"{repo}: {exc}") from None
    if nvr.name not in (name, repo.value):
        raise invalid(f"label name={nvr.name!r} does not match the repository {repo} "
                      f"(want {name!r} or {repo.value!r})")
    if ns.dist_tag and not nvr.release.endswith(f".{ns.dist_tag}"):
        raise invalid(f"label release={nvr.release!r} does not end with the dist tag of "
                      f"namespace {ns.name} (.{ns.dist_tag})")
    nvr = NVR(name, nvr.version, nvr.release)
    problem = nvr.tag_safety_problem()
    if problem is not None:
        raise invalid(f"{nvr}: {problem}")
    return nvr


async def write(store: ReleaseStore, fn: Callable[[ReleaseWriter], T]) -> T:
    """``fn`` in one write transaction of ``store``; a uniqueness race is a CONFLICT."""
    try:
        return await store.write(fn)
    except Conflict as exc:
        raise conflict(CONCURRENT_CHANGE, exc.detail) from None


class Inventory:
    def __init__(self, store: ReleaseStore, registry: Registry) -> None:
        self.store = store
        self.registry = registry

    async def _write(self, fn: Callable[[ReleaseWriter], T]) -> T:
        return await write(self.store, fn)

    # -- namespaces ------------------------------------------------------------------------
    async def add_namespace(self, name: str, dist_tag: str, *, interval_days: int = 14,
                            anchor: dt.date | None = None,
                            base_image: str | None = None) -> Namespace:
        if not _NAMESPACE.match(name) or len(name) > 64:
            raise invalid(f"invalid namespace name {name!r}")
        if not _DIST_TAG.match(dist_tag) or len(dist_tag) > 64:
            raise invalid(f"invalid dist tag {dist_tag!r} (letters, digits, '.', '_')")
        if not 1 <= interval_days <= schedule.MAX_INTERVAL_DAYS:
            raise invalid(f"interval must be 1 to {schedule.MAX_INTERVAL_DAYS} days, "
                          f"not {interval_days}")
        if anchor is not None:
            try:
                schedule.check_anchor(anchor)
            except ValueError as exc:
                raise invalid(str(exc)) from None
        today = self.store.today()
        ns = Namespace(name, dist_tag, interval_days,
                       anchor or today + dt.timedelta(days=interval_days), base_image,
                       self.store.now())

        def go(tx: ReleaseWriter) -> Namespace:
            if tx.namespace(name) is not None:
                raise conflict(f"namespace {name} already exists")
            tx.add_namespace(ns)
            return ns
        return await self._write(go)

    async def set_base_image(self, name: str, base_image: str | None) -> Namespace:
        """Record ``base_image`` (a repository, or None) as the namespace's base image."""
        if base_image is not None:
            base_image = parse_repository(base_image).value

        def go(tx: ReleaseWriter) -> Namespace:
            _namespace_or_fail(tx, name)
            tx.set_namespace_base(name, base_image)
            return _namespace_or_fail(tx, name)
        return await self._write(go)

    async def namespace_of(self, repository: str) -> Namespace:
        """The namespace ``repository`` belongs to (see :func:`namespace_for`)."""
        repo = parse_repository(repository)
        return await self.store.read(lambda tx: namespace_for(tx, repo))

    async def namespaces(self) -> list[Namespace]:
        return await self.store.read(lambda tx: tx.namespaces())

    async def namespace(self, name: str) -> Namespace:
        return await self.store.read(lambda tx: _namespace_or_fail(tx, name))

    # -- images ----------------------------------------------------------------------------
    async def add_image(self, repository: str, *, maintainers: Sequence[str] = (),
                        source_url: str | None = None, source_branch: str | None = None,
                        status: ImageStatus = ImageStatus.ACTIVE,
                        namespace: str | None = None, summary: str | None = None,
                        actor: str = "admin", reason: str | None = None) -> Image:
        """Add an image directly (releng/admin: the caller checked), without a review: a
        recorded forced registration (``image_events``: who, why — ``reason``, default
        ``registered directly (strata image add)``; ``base import`` for bases). Maintainers
        that are accounts get the maintainer grant on it. ``namespace`` is needed for a root
        repository (``fedora``) unless a namespace has its name."""
        repo = parse_repository(repository)
        why = (reason or "").strip() or "registered directly (strata image add)"

        def go(tx: ReleaseWriter) -> Image:
            if tx.image(repo.value) is not None:
                raise conflict(f"image {repo} already exists (change it with strata image set "
                               f"/ strata image maintainers)")
            ns = namespace_for(tx, repo, namespace)
            image = Image(repo.value, ns.name, image_name_of(repo), status,
                          tuple(dict.fromkeys(maintainers)), source_url, source_branch,
                          self.store.now(), summary)
            tx.add_image(image)
            for name in image.maintainers:
                tx.set_review_grant(name, repo.value, True)
            tx.record_review_event(repo.value, "registered", actor, image.created_at,
                                   reason=why, detail={"status": status.value})
            return image
        return await self._write(go)

    async def images(self, namespace: str | None = None) -> list[Image]:
        return await self.store.read(lambda tx: tx.images(namespace))

    async def image(self, repository: str) -> ImageDetails:
        """The image with its streams and tags (what the API shows)."""
        repo = parse_repository(repository)

        def go(tx: ReleaseReader) -> ImageDetails:
            image = _image_or_fail(tx, repo.value)
            tags = tx.repository_tags(repo.value, image.name)
            states = tag_states(tags)
            return ImageDetails(image, tuple(self._streams(tx, repo.value)), tuple(
                TagInfo(tag, classify_tag(tag).value, digest,
                        str(states[tag].nvr) if tag in states else None)
                for tag, digest in sorted(tags.tags.items())))
        return await self.store.read(go)

    # -- candidates ------------------------------------------------------------------------
    async def add_candidate(self, repository: str, digest: str, *, actor: str,
                            advisories: Sequence[str] = (),
                            reason: str | None = None,
                            force_reason: str | None = None,
                            help_text: str | None = None) -> Build:
        """Register a pushed build. Only an ``active`` image takes candidates
        (:func:`strata.review.policy.candidate_refusal`: 403 DENIED, submit it for review)
        unless ``force_reason`` is given (the caller checked releng/admin): a forced
        registration of an image that does not exist yet creates it ``active``; either way the
        reason is recorded in the image's events. Its labels and ``help_text`` (the help
        file, sent by ``strata build``) are indexed for search."""
        repo = parse_repository(repository)
        try:
            parsed = Digest.parse(digest)
        except RegistryError as exc:
            raise from_registry(exc) from None
        if force_reason is not None and not force_reason.strip():
            raise invalid("a forced registration needs a reason (--reason)")

        def before(tx: ReleaseReader) -> tuple[Namespace, Build | None, Image | None]:
            ns = namespace_for(tx, repo)
            return ns, tx.build(repo.value, str(parsed)), tx.image(repo.value)

        ns, existing, known = await self.store.read(before)
        if existing is not None:
            _not_withdrawn(existing)
            return existing
        _gate(repo.value, known, force_reason)
        labels = await read_labels(self.registry, repo, parsed)
        nvr = check_nvr(labels, repo, ns)
        build = Build(repo.value, str(parsed), nvr, BuildStatus.CANDIDATE,
                      tuple(dict.fromkeys(advisories)), reason, None, self.store.now(), actor)

        def go(tx: ReleaseWriter) -> Build:
            image = tx.image(repo.value, lock=True)
            _gate(repo.value, image, force_reason)
            if image is None:
                image = Image(repo.value, ns.name, image_name_of(repo), ImageStatus.ACTIVE, (),
                              None, None, build.created_at)
                tx.add_image(image)
            elif image.status is ImageStatus.RETIRED:
                raise conflict(f"image {repo} is retired and takes no new builds")
            again = tx.build(repo.value, build.digest)
            if again is not None:
                _not_withdrawn(again)
                return again
            same = tx.build_by_nvr(repo.value, nvr.version, nvr.release)
            if same is not None:
                raise conflict(f"{nvr} is already registered as {same.digest}")
            tagged = tx.tag_digests(repo.value).get(nvr.tag)
            if tagged is not None and tagged != build.digest:
                raise conflict(f"tag {nvr.tag} of {repo} already points to {tagged}; "
                               f"{nvr} cannot be {build.digest}")
            tx.add_build(build, labels=labels, help_text=help_text)  # texts kept for search
            if force_reason is not None:
                tx.record_review_event(
                    repo.value, "forced-registration", actor, build.created_at,
                    reason=force_reason.strip(),
                    detail={"digest": build.digest, "nvr": str(nvr),
                            "image_status": image.status.value})
            tx.enqueue("candidate.added", build.to_json(), build.created_at)
            return build
        return await self._write(go)

    async def stream_warnings(self, build: Build) -> list[str]:
        """Why releasing ``build`` would move no stream (not newer than the current release
        of its stream, or the stream is end-of-life); empty when it would move one."""
        if build.status is not BuildStatus.CANDIDATE:
            return []

        def go(tx: ReleaseReader) -> list[str]:
            image = tx.image(build.repository)
            name = image.name if image is not None else build.nvr.name
            tags = tx.repository_tags(build.repository, name)
            try:
                plan = plan_release(tag_states(tags), [Candidate(build.nvr, build.digest)],
                                    set(tags.eol))
            except StreamViolation as violation:
                return [f"{build.nvr} cannot be released as it is: {violation} "
                        f"(rule {violation.rule})"]
            if any(m.kind is not TagKind.NVR for m in plan.moves):
                return []
            why = "; ".join(f"{s.tag}: {s.reason}" for s in plan.skips
                            if classify_tag(s.tag) is not TagKind.NVR)
            return [f"{build.nvr} is not newer than the current release of its stream "
                    f"({why}): a release would publish only its NVR tag "
                    f"{build.nvr.version_release} and move no stream"]
        return await self.store.read(go)

    async def withdraw_candidate(self, reference: str, *, actor: str, reason: str) -> Build:
        """Take a pending build out of the next release (``strata candidate withdraw``).

        Recorded on the build (status ``withdrawn``, who, when, why) and sent to webhooks as
        ``candidate.withdrawn``; its manifest may then be deleted or garbage-collected.
        Withdrawing a withdrawn build again answers it unchanged; a released build is a
        CONFLICT (released builds stay)."""
        repo, digest = parse_build_ref(reference)
        if not reason.strip():
            raise invalid("a withdrawal needs a reason (--reason)")

        def go(tx: ReleaseWriter) -> Build:
            tx.image(repo.value, lock=True)
            build = tx.build(repo.value, str(digest))
            if build is None:
                raise not_found(f"{repo}@{digest} is not a registered build")
            if build.status is BuildStatus.WITHDRAWN:
                return build
            if build.status is BuildStatus.RELEASED:
                raise conflict(f"{build.nvr} was released in {build.release_name}; released "
                               "builds cannot be withdrawn")
            now = self.store.now()
            tx.withdraw_build(build, now, actor, reason.strip())
            withdrawn = tx.build(repo.value, str(digest))
            assert withdrawn is not None
            tx.enqueue("candidate.withdrawn", withdrawn.to_json(), now)
            return withdrawn
        return await self._write(go)

    async def candidates(self, *, namespace: str | None = None, repository: str | None = None,
                         status: BuildStatus | tuple[BuildStatus, ...] | None
                         = BuildStatus.CANDIDATE) -> list[Build]:
        return await self.store.read(lambda tx: tx.builds(
            namespace=namespace, repository=repository, status=status))

    # -- streams and history ---------------------------------------------------------------
    @staticmethod
    def _streams(tx: ReleaseReader, repository: str) -> list[Stream]:
        rows = {s.version: s for s in tx.streams(repository)}
        versions = {b.nvr.version for b in tx.builds(repository=repository)}
        versions |= {tag for tag in tx.tag_digests(repository)
                     if classify_tag(tag) is TagKind.VERSION}
        return [rows.get(v) or Stream(repository, v, False) for v in sorted(versions | set(rows))]

    async def streams(self, repository: str) -> list[Stream]:
        repo = parse_repository(repository)

        def go(tx: ReleaseReader) -> list[Stream]:
            _image_or_fail(tx, repo.value)
            return self._streams(tx, repo.value)
        return await self.store.read(go)

    async def history(self, repository: str, tag: str | None = None,
                      at: float | None = None, *, after: int | None = None,
                      limit: int = 1000) -> TagHistory:
        """The events of a tag (or of every tag), oldest first: at most ``limit`` of them,
        after the event whose id is ``after`` (a page); with ``at``, what it pointed to then."""
        repo = parse_repository(repository)

        def go(tx: ReleaseReader) -> TagHistory:
            page = tx.tag_events_page(repo.value, tag, at, after, limit)
            if page is None:
                raise invalid(f"last={after} is no event of {repo.value}; start again "
                              "without last", {"last": str(after)})
            events = tuple(page)
            if tag is None or at is None:
                return TagHistory(repo.value, tag, events)
            latest = tx.tag_history(repo.value, tag, until=at, limit=1)
            since = latest[-1] if latest else None
            digest = since.new_digest if since else None
            build = tx.build(repo.value, digest) if digest else None
            return TagHistory(repo.value, tag, events, at, digest,
                              str(build.nvr) if build else None, since)
        return await self.store.read(go)
