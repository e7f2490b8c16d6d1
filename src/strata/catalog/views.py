"""Read models of the catalog pages and of their JSON (``/api/v1/browse/...``).

:class:`Catalog` composes what the release engine, the registry, the review and build stores
already answer into one frozen value per page — :class:`HomeView`, :class:`NamespaceView`,
:class:`ImageView`, :class:`ReleaseView` — each with ``to_json()`` (what the API returns) and
used as is by the templates. Every method takes the caller's :class:`Visibility`: what an
anonymous client may not pull is not shown to it (an unknown and a hidden image are the same
404), so the pages and the JSON follow the registry's own pull rule.
"""

from __future__ import annotations

import functools
import json
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from strata.catalog.help import LayerRef, find_help, render_markdown
from strata.catalog.trust import TrustReader, TrustView, config_hint, key_url
from strata.errors import RegistryError
from strata.meta.browse_store import BrowseStore, ReviewSummary
from strata.meta.key_store import KeyRecord, KeyStore
from strata.oci import mediatypes as mt
from strata.oci.digest import Digest
from strata.oci.names import ManifestRef, RepositoryName
from strata.registry.service import Registry
from strata.release.engine import ReleaseEngine
from strata.release.errors import ReleaseError, not_found
from strata.release.model import (
    Build,
    BuildStatus,
    Image,
    Namespace,
    Release,
    ReleaseStatus,
    RepositoryTags,
    TagEvent,
    iso_time,
    parse_repository,
    split_repository,
)
from strata.release.rebuild import BuildInputs, Package
from strata.release.rpmvercmp import evr_compare, rpmvercmp
from strata.release.streams import TagKind, classify_tag, is_cosign_tag
from strata.release.tagstates import tag_states

Visibility = Callable[[str], bool]
"""Whether the viewer may see a repository (or a namespace, by its name)."""

HISTORY_EVENTS = 30
RECENT_IMAGES = 12
LATEST_RELEASES = 10
HELP_CACHE = 256
NAMESPACE_PAGE = 100
NAMESPACE_RELEASES = 50
HELP_CHARS = 24_000
NOTES_CHARS = 40_000
RELEASE_TRUST_ROWS = 100
"""The most builds of a release whose signature, SBOM and provenance its page checks."""
"""The most of a release's notes its page renders (``notes.md`` has them all)."""
"""The most of a help file a page renders (the rest: "truncated", the image has it all)."""


def everyone(_name: str) -> bool:
    return True


@dataclass(frozen=True, slots=True)
class PullCommands:
    podman: str
    skopeo: str
    docker: str

    def to_json(self) -> dict[str, str]:
        return {"podman": self.podman, "skopeo": self.skopeo, "docker": self.docker}


def pull_commands(host: str, repository: str, tag: str, *, insecure: bool) -> PullCommands:
    """How to pull ``repository:tag`` from ``host`` (plain HTTP: TLS verification off)."""
    ref = f"{host}/{repository}:{tag}"
    tls = " --tls-verify=false" if insecure else ""
    src_tls = " --src-tls-verify=false" if insecure else ""
    local = f"oci:{repository.split('/')[-1]}:{tag}"
    return PullCommands(f"podman pull{tls} {ref}",
                        f"skopeo copy{src_tls} docker://{ref} {local}",
                        f"docker pull {ref}")


@dataclass(frozen=True, slots=True)
class StreamRow:
    """A stream tag of an image: where it points, when it last moved and in which release."""

    tag: str
    kind: str  # latest | version | nvr
    digest: str
    nvr: str | None
    moved_at: float | None
    release: str | None
    eol: bool
    pull: PullCommands
    signed: bool = False  # a cosign signature (``sha256-<hex>.sig``) of the digest is there

    def to_json(self) -> dict[str, Any]:
        return {"tag": self.tag, "kind": self.kind, "digest": self.digest, "nvr": self.nvr,
                "moved_at": iso_time(self.moved_at), "release": self.release, "eol": self.eol,
                "signed": self.signed, "pull": self.pull.to_json()}


@dataclass(frozen=True, slots=True)
class LayerRow:
    digest: str
    media_type: str
    size: int

    def to_json(self) -> dict[str, Any]:
        return {"digest": self.digest, "media_type": self.media_type, "size": self.size}


@dataclass(frozen=True, slots=True)
class ImageCard:
    """An image in a list: the home page's recently updated ones, a namespace's images."""

    repository: str
    summary: str | None
    status: str
    updated_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"repository": self.repository, "summary": self.summary, "status": self.status,
                "updated_at": iso_time(self.updated_at)}


def _card(image: Image, at: float | None = None) -> ImageCard:
    return ImageCard(image.repository, image.summary, image.status.value, at)


def _review_json(review: ReviewSummary) -> dict[str, Any]:
    return {"id": review.id, "status": review.status, "submitter": review.submitter,
            "checks": list(review.checks), "created_at": iso_time(review.created_at),
            "decided_at": iso_time(review.decided_at), "decided_by": review.decided_by}


def _event_json(event: TagEvent) -> dict[str, Any]:
    return event.to_json()


@dataclass(frozen=True)
class ImageView:
    """Everything the image page shows."""

    image: Image
    host: str
    streams: tuple[StreamRow, ...]
    eol_versions: tuple[str, ...]
    builds: tuple[Build, ...]
    shown_digest: str | None  # the build whose labels, layers and packages are shown
    labels: dict[str, str] = field(hash=False)
    layers: tuple[LayerRow, ...]
    platforms: tuple[str, ...]
    inputs: BuildInputs | None
    help_html: str | None
    history: tuple[TagEvent, ...]
    reviews: tuple[ReviewSummary, ...]
    signed: bool = False  # the shown build has a release signature
    trust: TrustView | None = None  # the shown build's signature, SBOM and provenance

    @property
    def packages(self) -> tuple[Package, ...]:
        return () if self.inputs is None else self.inputs.packages

    @property
    def size(self) -> int:
        return sum(layer.size for layer in self.layers)

    @property
    def review(self) -> ReviewSummary | None:
        return self.reviews[0] if self.reviews else None

    @property
    def default_pull(self) -> PullCommands | None:
        for row in self.streams:
            if row.kind == "latest":
                return row.pull
        return self.streams[0].pull if self.streams else None

    def to_json(self) -> dict[str, Any]:
        return {**self.image.to_json(), "host": self.host,
                "streams": [s.to_json() for s in self.streams],
                "eol_versions": list(self.eol_versions),
                "builds": [b.to_json() for b in self.builds],
                "shown_digest": self.shown_digest, "labels": self.labels,
                "layers": [layer.to_json() for layer in self.layers], "size": self.size,
                "platforms": list(self.platforms),
                "inputs": None if self.inputs is None else self.inputs.to_json(),
                "packages": [p.to_json() for p in self.packages],
                "help_html": self.help_html,
                "history": [_event_json(e) for e in self.history],
                "reviews": [_review_json(r) for r in self.reviews],
                "signature": {"digest": self.shown_digest, "signed": self.signed}
                if self.shown_digest else None,
                "trust": None if self.trust is None else self.trust.to_json()}


@dataclass(frozen=True)
class HomeView:
    namespaces: tuple[Namespace, ...]
    releases: tuple[Release, ...]
    recent: tuple[ImageCard, ...]

    def to_json(self) -> dict[str, Any]:
        return {"namespaces": [ns.to_json() for ns in self.namespaces],
                "releases": [r.to_json() for r in self.releases],
                "recent": [c.to_json() for c in self.recent]}


@dataclass(frozen=True)
class NamespaceView:
    namespace: Namespace
    images: tuple[ImageCard, ...]  # one page of them
    releases: tuple[Release, ...]
    last: str | None = None  # more images follow this repository
    keys: tuple[KeyRecord, ...] = ()  # its release keys, current first

    @property
    def key_url(self) -> str:
        return key_url(self.namespace.name)

    @property
    def config_hint(self) -> str:
        return config_hint(self.namespace.name)

    def to_json(self) -> dict[str, Any]:
        return {**self.namespace.to_json(), "images": [c.to_json() for c in self.images],
                "releases": [r.to_json() for r in self.releases], "more_after": self.last,
                "trust": {"public_key_url": self.key_url, "client_config": self.config_hint,
                          "keys": [{"key_id": k.key_id, "status": k.status,
                                    "created_at": iso_time(k.created_at),
                                    "retired_at": iso_time(k.retired_at)}
                                   for k in self.keys]}}


@dataclass(frozen=True)
class ReleaseView:
    release: Release
    notes_html: str | None
    builds: tuple[Build, ...]
    trust: dict[str, TrustView] = field(default_factory=dict, hash=False)  # by digest

    def to_json(self) -> dict[str, Any]:
        return {**self.release.to_json(), "notes_html": self.notes_html,
                "builds": [{**b.to_json(), "trust": self.trust[b.digest].to_json()
                            if b.digest in self.trust else None} for b in self.builds]}


def _kind(tag: str) -> str:
    return {TagKind.NAME: "latest", TagKind.VERSION: "version", TagKind.NVR: "nvr"}[
        classify_tag(tag)]


def _stream_order(a: StreamRow, b: StreamRow) -> int:
    return _tag_order(a.tag, b.tag)


def _cut(text: str, limit: int, note: str) -> str:
    """``text`` cut at a paragraph before ``limit`` characters, with ``note`` in italics."""
    if len(text) <= limit:
        return text
    cut = text.rfind("\n\n", 0, limit)
    return text[:cut if cut > 0 else limit] + f"\n\n*({note})*\n"


def _newest_build_first(a: Build, b: Build) -> int:
    if a.created_at != b.created_at:
        return -1 if a.created_at > b.created_at else 1
    return -evr_compare(a.nvr.version, a.nvr.release, b.nvr.version, b.nvr.release)


_NEWEST_FIRST = functools.cmp_to_key(_newest_build_first)


def _signature_tag(digest: str) -> str:
    return digest.replace(":", "-", 1) + ".sig"


def _version_of(tag: str, kind: str) -> str:
    return tag if kind == "version" else tag.split("-", 1)[0]


def _tag_order(a: str, b: str) -> int:
    rank = {"latest": 0, "version": 1, "nvr": 2}
    ka, kb = _kind(a), _kind(b)
    if ka != kb:
        return rank[ka] - rank[kb]
    return -rpmvercmp(a, b) or (a > b) - (a < b)


_LISTED = (BuildStatus.CANDIDATE, BuildStatus.RELEASED)


def shown_build(tags: dict[str, str], builds: Sequence[Build]) -> str | None:
    """The build an image page shows: ``latest``'s, else the first stream tag's (highest
    version first), else the newest registered build's."""
    streams = sorted((t for t in tags if not is_cosign_tag(t)), key=functools.cmp_to_key(
        _tag_order))
    if streams:
        return tags[streams[0]]
    listed = sorted((b for b in builds if b.status in _LISTED), key=_NEWEST_FIRST)
    return listed[0].digest if listed else None


def _image_manifest(doc: dict[str, Any]) -> tuple[str | None, list[LayerRef]]:
    config = doc.get("config")
    digest = config.get("digest") if isinstance(config, dict) else None
    layers = [LayerRef(str(d.get("digest")), str(d.get("mediaType", "")), int(d.get("size", 0)))
              for d in doc.get("layers") or [] if isinstance(d, dict)]
    return (str(digest) if digest else None), layers


class Catalog:
    """The pages' read use-case over the release engine, the registry and the browse store."""

    def __init__(self, engine: ReleaseEngine, registry: Registry, store: BrowseStore,
                 keys: KeyStore | None = None) -> None:
        self.engine = engine
        self.registry = registry
        self.store = store
        self.trust = TrustReader(registry, keys)
        self._help: OrderedDict[str, str | None] = OrderedDict()

    # -- home and namespaces -------------------------------------------------------------------
    async def home(self, visible: Visibility = everyone) -> HomeView:
        namespaces = [ns for ns in await self.engine.inventory.namespaces() if visible(ns.name)]
        releases = [r for r in await self.engine.releases()
                    if r.status is ReleaseStatus.PUBLISHED and visible(r.namespace)]
        releases.sort(key=lambda r: r.published_at or 0.0, reverse=True)
        recent = await self.store.recent_repositories(RECENT_IMAGES * 2)
        images = await self.store.images_named([r.repository for r in recent])
        cards = [_card(images[r.repository], r.at) for r in recent
                 if r.repository in images and visible(r.repository)][:RECENT_IMAGES]
        return HomeView(tuple(namespaces), tuple(releases[:LATEST_RELEASES]), tuple(cards))

    async def namespace(self, name: str, visible: Visibility = everyone, *,
                        after: str | None = None, n: int = NAMESPACE_PAGE) -> NamespaceView:
        """A namespace with a page of its images (``n`` after the repository ``after``)."""
        if not visible(name):
            raise not_found(f"unknown namespace {name!r}")
        ns = await self.engine.inventory.namespace(name)
        page = await self.store.namespace_images(name, after=after, limit=n + 1)
        last = page[n - 1].repository if len(page) > n else None
        images = [i for i in page[:n] if visible(i.repository)]
        releases = (await self.engine.releases(name))[:NAMESPACE_RELEASES]
        return NamespaceView(ns, tuple(_card(i) for i in images), tuple(releases), last,
                             tuple(await self.trust.namespace_keys(name)))

    async def image_exists(self, repository: str, visible: Visibility = everyone) -> bool:
        if not visible(repository):
            return False
        try:
            await self.engine.inventory.image(repository)
        except ReleaseError:
            return False
        return True

    # -- one image -------------------------------------------------------------------------
    async def image(self, repository: str, *, host: str, insecure: bool = False,
                    visible: Visibility = everyone) -> ImageView:
        if not visible(repository):
            raise not_found(f"unknown image {repository!r}")
        repo = parse_repository(repository).value  # 400 INVALID for a malformed name
        got = await self.store.image_rows(repo, events=HISTORY_EVENTS * 3, choose=shown_build)
        if got is None:
            raise not_found(f"unknown image {repository!r}")
        extras = got.extras
        history = tuple(e for e in extras.recent_events
                        if not is_cosign_tag(e.tag))[:HISTORY_EVENTS]
        builds = sorted((b for b in got.builds if b.status in _LISTED), key=_NEWEST_FIRST)
        eol = tuple(s.version for s in got.streams if s.eol)
        states = tag_states(RepositoryTags(repo, got.image.name, got.tags,
                                           {b.digest: b.nvr for b in got.builds},
                                           frozenset(eol)))
        signatures = {tag for tag in got.tags if is_cosign_tag(tag)}
        rows = []
        for tag, digest in got.tags.items():
            if is_cosign_tag(tag):
                continue
            moved = extras.last_moves.get(tag)
            kind = _kind(tag)
            rows.append(StreamRow(
                tag, kind, digest, str(states[tag].nvr) if tag in states else None,
                moved.at if moved else None, moved.release_name if moved else None,
                kind != "latest" and _version_of(tag, kind) in eol,
                pull_commands(host, repo, tag, insecure=insecure),
                _signature_tag(digest) in signatures))
        rows.sort(key=functools.cmp_to_key(_stream_order))
        shown = got.shown
        labels, layers, platforms, help_html = await self._content(repo, shown)
        trust = None if shown is None else await self.trust.view(repo, got.image.namespace,
                                                                  shown)
        return ImageView(got.image, host, tuple(rows), eol, tuple(builds), shown, labels,
                         tuple(LayerRow(x.digest, x.media_type, x.size) for x in layers),
                         platforms, got.inputs, help_html, history, extras.reviews,
                         shown is not None and _signature_tag(shown) in signatures, trust)

    async def _read_blob(self, repo: RepositoryName, digest: str) -> AsyncIterator[bytes]:
        handle = await self.registry.blobs.open(repo, Digest.parse(digest))
        return self.registry.blobs.stream(handle, 0, handle.size)

    async def _json_blob(self, repo: RepositoryName, digest: str) -> dict[str, Any]:
        chunks = [c async for c in await self._read_blob(repo, digest)]
        doc = json.loads(b"".join(chunks))
        return doc if isinstance(doc, dict) else {}

    async def _content(self, repository: str, digest: str | None
                       ) -> tuple[dict[str, str], list[LayerRef], tuple[str, ...], str | None]:
        """Labels, layers, platforms and rendered help of the manifest ``digest``."""
        if digest is None:
            return {}, [], (), None
        repo = RepositoryName.parse(repository)
        try:
            record = await self.registry.manifests.get(repo, ManifestRef(
                digest=Digest.parse(digest)))
            doc = json.loads(record.content)
            platforms: tuple[str, ...] = ()
            if record.media_type in (mt.OCI_INDEX, mt.DOCKER_LIST):
                children = [m for m in doc.get("manifests") or [] if isinstance(m, dict)]
                platforms = tuple(
                    "/".join(str(v) for v in (p.get("os"), p.get("architecture"),
                                              p.get("variant")) if v)
                    for p in (m.get("platform") or {} for m in children))
                if not children:
                    return {}, [], platforms, None
                record = await self.registry.manifests.get(repo, ManifestRef(
                    digest=Digest.parse(str(children[0].get("digest")))))
                doc = json.loads(record.content)
            config_digest, layers = _image_manifest(doc)
            labels: dict[str, str] = {}
            if config_digest is not None:
                config = await self._json_blob(repo, config_digest)
                raw = (config.get("config") or {}).get("Labels") or {}
                labels = {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) \
                    else {}
            return labels, layers, platforms, await self._help_html(repo, record.digest, layers)
        except (RegistryError, ValueError, KeyError, TypeError, AttributeError):
            return {}, [], (), None  # content gone or not an image: the page shows less

    async def _help_html(self, repo: RepositoryName, digest: str,
                         layers: list[LayerRef]) -> str | None:
        if digest in self._help:
            self._help.move_to_end(digest)
            return self._help[digest]
        text = await find_help(layers, lambda d: self._read_blob(repo, d))
        if text is not None:
            text = _cut(text, HELP_CHARS, "truncated here: the whole text is `/help.md` in the "
                        "image")
        html = None if text is None else render_markdown(text)
        self._help[digest] = html
        while len(self._help) > HELP_CACHE:
            self._help.popitem(last=False)
        return html

    # -- releases ---------------------------------------------------------------------------
    async def release(self, name: str, visible: Visibility = everyone) -> ReleaseView:
        details = await self.engine.release(name)
        if not visible(details.release.namespace):
            raise not_found(f"unknown release {name!r}")
        notes = details.notes_markdown
        if notes is not None:
            notes = _cut(notes, NOTES_CHARS, f"truncated here: the whole notes are "
                         f"`/api/v1/releases/{details.release.name}/notes.md`")
        builds = tuple(b for b in details.builds if visible(b.repository))
        namespace = details.release.namespace
        found = await self.trust.namespace_keys(namespace)
        trust = {b.digest: await self.trust.view(b.repository, namespace, b.digest, found)
                 for b in builds[:RELEASE_TRUST_ROWS]}
        return ReleaseView(details.release, None if notes is None else render_markdown(notes),
                           builds, trust)


def image_path(repository: str, reserved: frozenset[str]) -> str:
    """The page of an image: ``/<ns>/<name>``, or ``/-/images/<repository>`` for a root image
    or a namespace whose name a route of the server already takes."""
    prefix, name = split_repository(RepositoryName(repository))
    if prefix is None or prefix in reserved:
        return f"/-/images/{repository}"
    return f"/{prefix}/{name}"
