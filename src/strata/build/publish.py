"""``strata build``: source -> label policy -> release number -> image -> registry -> candidate.

1. open the source (clone a git URL), plan the build (pull base images);
2. check the label policy (:mod:`strata.build.labels`) before anything is built;
3. pick the repository ``<namespace>/<name>``; if a build of the same inputs already
   exists (:mod:`strata.build.reuse`), return it (``"reused": true``) unless ``rebuild``;
   else the release: the namespace's dist tag comes from the release API, used numbers
   from the tag list and the candidates; an explicit ``LABEL release=`` must be above
   them all;
4. build (twice with ``verify``, in fresh work directories, failing unless the digests
   are equal), push the layers, config and manifest (by digest: a candidate);
5. push the build record as an OCI artifact referring to the image, then register the
   candidate with ``POST /api/v1/candidates`` (the release engine reads its NVR labels) with
   what it was built from: source URL and commit, base repository, stream tag and digest, and
   the OS package list (the rebuild loop's record). ``rebuild`` builds again even if a build
   of the same inputs exists (and gets a new release); with ``if_changed`` too (the rebuild
   loop's jobs, ``strata build --if-changed``), if the source commit, base digest and package
   list are those of the repository's current candidate or release, the server refuses the
   registration as unchanged and nothing is registered (the result says ``"dropped": true``):
   such a rebuild gets a new NVR only if something changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from strata.build.builder import (
    BuildOptions,
    LocalBuild,
    build_image,
    help_file,
    plan_build,
    remove_work,
)
from strata.build.compare import image_differences
from strata.build.context import Source, open_source
from strata.build.errors import EXIT_INPUT, BuildError
from strata.build.labels import (
    ReleaseRefused,
    check_labels,
    explicit_release,
    release_string,
    split_name,
    used_numbers,
)
from strata.build.record import EMPTY_JSON, record_manifest
from strata.build.remote import (
    BlobRef,
    Puller,
    parse_image_ref,
    push_blob_file,
    push_manifest,
)
from strata.build.reuse import Reusable, build_inputs, find_reusable
from strata.client.api import ApiClient
from strata.client.registry import ClientError, RegistryClient, sha256
from strata.oci import mediatypes as mt
from strata.release.model import ImageStatus
from strata.release.nvr import NVR
from strata.release.rebuild import Package
from strata.release.rebuild import packages_digest as list_digest
from strata.review.policy import candidate_refusal

__all__ = ["Registry", "SourceSpec", "run_build"]


@dataclass(frozen=True)
class Registry:
    url: str
    client: RegistryClient
    api: ApiClient

    @property
    def host(self) -> str:
        return urlsplit(self.url).netloc


@dataclass(frozen=True)
class SourceSpec:
    location: str  # a directory or a git URL
    ref: str | None = None
    commit: str | None = None
    source_date_epoch: int | None = None
    # A server's build job clones the registered source itself: these are recorded as the
    # build's source URL and branch instead of the clone's directory, and the build must
    # make this repository.
    url: str | None = None
    repository: str | None = None


async def dist_tag_of(api: ApiClient, namespace: str) -> str:
    try:
        data = await api.namespaces()
    except ClientError as exc:
        raise BuildError(f"cannot read the namespaces from the release API: {exc}") from exc
    for item in data.get("namespaces", []):
        if item.get("name") == namespace:
            return str(item.get("dist_tag") or "")
    raise BuildError(f"unknown namespace {namespace!r}: add it first "
                     f"(strata namespace add {namespace} --dist-tag ...)")


async def used_tags(client: RegistryClient, repo: str) -> list[str]:
    try:
        return await client.tags(repo)
    except ClientError as exc:
        if exc.status == 404:
            return []
        raise BuildError(f"cannot list the tags of {repo}: {exc}") from exc


async def _builds_of(api: ApiClient, repo: str) -> list[dict[str, Any]]:
    """Every build registered for *repo* (candidates, released, withdrawn)."""
    try:
        data = await api.candidates(repository=repo, status="all")
    except ClientError as exc:
        if exc.status == 404:
            return []
        raise BuildError(f"cannot list the builds of {repo}: {exc}") from exc
    return [b for b in data.get("candidates", []) if isinstance(b, dict)]


async def _release(registry: Registry, repo: str, version: str, dist_tag: str,
                   builds: list[dict[str, Any]], wanted: str | None) -> str:
    """The next free release, or the explicit ``LABEL release=`` *wanted* if it is free
    and above every release of *version*."""
    used = used_numbers(version, dist_tag, await used_tags(registry.client, repo),
                        [str(b.get("release")) for b in builds if b.get("version") == version])
    if wanted is None:
        return release_string(max(used, default=0) + 1, dist_tag)
    try:
        return explicit_release(wanted, version, dist_tag, used)
    except ReleaseRefused as exc:
        raise BuildError(str(exc), exit_code=EXIT_INPUT) from exc


def _repository(labels: dict[str, str], namespace: str | None) -> tuple[str, str]:
    label_ns, short = split_name(labels["name"].strip())
    if label_ns is not None and namespace is not None and label_ns != namespace:
        raise BuildError(f"label name={labels['name']!r} is in namespace {label_ns!r}, "
                         f"not {namespace!r}")
    namespace = namespace or label_ns
    if namespace is None:
        raise BuildError("no namespace: give --namespace or a name label like 'f25/NAME'")
    return namespace, short


class EarlyPush:
    """The layers of a single-stage build pushed while it goes on, each as soon as it is
    written (its upload overlaps the next steps instead of following the last one).  A
    multi-stage build's layers are not all the image's: those wait for :func:`push_image`.
    If the build fails, the uploads still going are cancelled; layers already uploaded stay
    unreferenced for ``strata gc``, as after any push that did not end with a manifest."""

    def __init__(self, client: RegistryClient, repo: str) -> None:
        self.loop = asyncio.get_running_loop()
        self.client = client
        self.repo = repo
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.gate = asyncio.Semaphore(2)

    def offer(self, blob: BlobRef) -> None:
        """A layer blob was written (called on a layer-writer thread)."""
        with contextlib.suppress(RuntimeError):  # the loop has closed: push_image pushes it
            self.loop.call_soon_threadsafe(self._start, blob)

    def _start(self, blob: BlobRef) -> None:
        if blob.digest not in self.tasks:
            self.tasks[blob.digest] = self.loop.create_task(self._push(blob))

    async def _push(self, blob: BlobRef) -> None:
        async with self.gate:
            await push_blob_file(self.client, self.repo, blob.digest, blob.path)

    async def close(self) -> None:
        for task in self.tasks.values():
            task.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)


async def push_image(client: RegistryClient, repo: str, built: LocalBuild,
                     early: EarlyPush | None = None) -> None:
    gate = asyncio.Semaphore(4)
    layers = {layer.digest: layer for layer in built.image.layers}

    async def one(digest: str) -> None:
        layer = layers[digest]
        started = early.tasks.get(digest) if early is not None else None
        if started is not None:
            # then asked for again (HEAD): the server's gc spares what was asked for within
            # its grace period, however long the build took; re-uploaded if gone
            await started
        async with gate:
            await push_blob_file(client, repo, digest, layer.path, layer.repository)

    try:
        await asyncio.gather(*(one(digest) for digest in layers))
        config_digest = sha256(built.image.config)
        if await client.blob_exists(repo, config_digest) is None:
            await client.push_blob(repo, built.image.config, config_digest)
    except ClientError as exc:
        raise BuildError(f"pushing to {repo} failed: {exc}") from exc
    await push_manifest(client, repo, built.image.manifest, built.image.digest)


async def push_record(client: RegistryClient, repo: str, built: LocalBuild,
                      record: dict[str, Any]) -> str:
    body = json.dumps(record, indent=1, sort_keys=True).encode()
    subject = {"mediaType": mt.OCI_MANIFEST, "digest": built.image.digest,
               "size": len(built.image.manifest)}
    manifest = record_manifest(body, subject)
    try:
        for blob in (EMPTY_JSON, body):
            if await client.blob_exists(repo, sha256(blob)) is None:
                await client.push_blob(repo, blob)
    except ClientError as exc:
        raise BuildError(f"pushing the build record failed: {exc}") from exc
    return await push_manifest(client, repo, manifest, sha256(manifest))


@functools.cache
def builder_version() -> str:
    """This builder's version (the provenance's ``runDetails.builder.version``)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("strata")
    except PackageNotFoundError:
        return "unknown"


def builder_labels(release: str, commit: str | None) -> dict[str, str]:
    """The labels the builder adds to every image: the release it picked and, from git, the
    commit (``strata verify`` adds the same when it rebuilds)."""
    extra = {"release": release}
    if commit:
        extra.update({"vcs-ref": commit, "vcs-type": "git"})
    return extra


def _record(source: Source, built: LocalBuild, *, repo: str, nvr: NVR, duration: float,
            verified: bool, inputs: dict[str, Any] | None) -> dict[str, Any]:
    base = built.base
    host = any(step.get("network") == "host" for step in built.steps)
    return {
        "schema": "strata.build.record/v1",
        "image": {"repository": repo, "digest": built.image.digest, "nvr": str(nvr),
                  "labels": built.image.labels,
                  "layers": [layer.descriptor() for layer in built.image.layers]},
        "source": {"url": source.url or source.root.as_uri(), "ref": source.ref,
                   "commit": source.commit, "dirty": source.dirty,
                   "containerfile": source.containerfile.name,
                   "containerfile_digest": sha256(source.containerfile.read_bytes())},
        "base": {"reference": base.reference, "digest": base.digest} if base else None,
        "source_date_epoch": source.source_date_epoch,
        "duration_seconds": round(duration, 3),
        "verified_reproducible": verified,
        "network": "host" if host else "none",  # whether any RUN had the host's network
        "builder": {"name": "strata", "version": builder_version()},
        "inputs": inputs,
        "steps": built.steps,
        "packages": built.packages,
    }


async def check_gate(api: ApiClient, repo: str, force_reason: str | None) -> None:
    """Refuse before building when the server would refuse the candidate: the image is not
    registered or still in review (:func:`strata.review.policy.candidate_refusal`), unless
    forced with a reason (releng/admin; the server checks the role and records the reason)."""
    try:
        image = await api.image(repo)
        status: ImageStatus | None = ImageStatus(str(image.get("status")))
    except ClientError as exc:
        if exc.status != 404:
            raise BuildError(f"cannot read image {repo} from the release API: {exc}") from exc
        status = None
    except ValueError:
        status = None
    refusal = candidate_refusal(repo, status, forced=force_reason is not None)
    if refusal is not None:
        raise BuildError(refusal, exit_code=EXIT_INPUT)


async def run_build(registry: Registry, spec: SourceSpec, opts: BuildOptions, *,
                    verify: bool = False, rebuild: bool = False, if_changed: bool = False,
                    work_parent: Path | None = None, clean_in_background: bool = False,
                    log: Callable[[str], None] = lambda _: None,
                    output: Callable[[bytes], None] = lambda _: None,
                    force_reason: str | None = None) -> dict[str, Any]:
    """Build, push and register one candidate -- or find the one already built from the
    same inputs (unless *rebuild*); returns what ``--json`` prints. Only an approved
    (``active``) image is built unless ``force_reason`` (see :func:`check_gate`)."""
    rebuild = rebuild or if_changed
    started = time.monotonic()
    top = Path(tempfile.mkdtemp(prefix="strata-build.", dir=work_parent))
    early: EarlyPush | None = None
    try:
        source = await asyncio.to_thread(
            open_source, spec.location, file=opts.containerfile, ref=spec.ref,
            commit=spec.commit, source_date_epoch=spec.source_date_epoch,
            clone_dir=top / "source")
        if spec.url is not None:
            source = replace(source, url=spec.url, ref=spec.ref)
        plan = await plan_build(source, opts, Puller(registry.client, opts.cache_dir),
                                registry.url)
        report = check_labels(plan.labels, help_file=(
            None if help_file(source.root) is None else "help"))
        if report.warnings or report.problems:
            log(report.text())
        if not report.ok:
            raise BuildError(report.text(), exit_code=EXIT_INPUT)
        namespace, name = _repository(plan.labels, opts.namespace)
        repo = f"{namespace}/{name}"
        if spec.repository is not None and repo != spec.repository:
            raise BuildError(f"the Containerfile builds {repo}, not {spec.repository} "
                             f"(label name={plan.labels['name']!r})", exit_code=EXIT_INPUT)
        version = plan.labels["version"].strip()
        # three independent requests at once; a failure is reported in this order
        asked = (asyncio.ensure_future(dist_tag_of(registry.api, namespace)),
                 asyncio.ensure_future(check_gate(registry.api, repo, force_reason)),
                 asyncio.ensure_future(_builds_of(registry.api, repo)))
        try:
            dist_tag = await asked[0]
            await asked[1]
            builds = await asked[2]
        finally:
            for task in asked:
                task.cancel()
        inputs = build_inputs(source, plan, opts)
        existing = None
        if inputs is not None and not rebuild:
            existing = await find_reusable(registry.client, repo, version, builds, inputs)
        if existing is not None and not verify:
            return _reused(registry, repo, existing, verified=False,
                           duration=time.monotonic() - started, log=log)
        if existing is not None:
            release = str(existing.build["release"])
        else:
            release = await _release(registry, repo, version, dist_tag, builds,
                                     plan.labels.get("release"))
        nvr = NVR(name, version, release)
        extra = builder_labels(release, source.commit)
        log(f"building {repo} {nvr} (SOURCE_DATE_EPOCH={source.source_date_epoch})")
        # the record names the builder's version: found (a walk of the installed packages'
        # metadata, ~0.1 s) while the image builds
        version_known = asyncio.ensure_future(asyncio.to_thread(builder_version))
        runs = 2 if verify else 1
        builds_done: list[LocalBuild] = []
        if len(plan.stages) == 1:
            early = EarlyPush(registry.client, repo)
        for index in range(runs):
            work = top / f"work{index}"
            work.mkdir()
            builds_done.append(await asyncio.to_thread(
                build_image, plan, opts, work, extra_labels=extra, log=log, output=output,
                on_blob=early.offer if early is not None and index == runs - 1 else None))
        if verify and builds_done[0].image.digest != builds_done[1].image.digest:
            raise BuildError(await asyncio.to_thread(_difference, *builds_done))
        built = builds_done[-1]
        if existing is not None:
            if built.image.digest != existing.build["digest"]:
                raise BuildError(
                    f"not reproducible: {nvr} was built from the same inputs as "
                    f"{existing.build['digest']}; two builds now give {built.image.digest} "
                    "(--rebuild builds a new release)")
            log(f"verified: two builds give the digest of the existing {nvr}")
            return _reused(registry, repo, existing, verified=True,
                           duration=time.monotonic() - started, log=log)
        log(f"pushing {repo}@{built.image.digest}")
        await push_image(registry.client, repo, built, early)
        await version_known
        duration = time.monotonic() - started
        record = _record(source, built, repo=repo, nvr=nvr, duration=duration,
                         verified=verify, inputs=inputs)
        record_digest = await push_record(registry.client, repo, built, record)
        try:
            candidate = await registry.api.add_candidate(
                f"{repo}@{built.image.digest}",
                inputs={**candidate_inputs(record, built), "record": record_digest,
                        **help_of(source.root)},
                if_changed=if_changed, reason=force_reason, force=force_reason is not None)
        except ClientError as exc:
            if exc.status == 409 and isinstance(exc.detail, dict) and exc.detail.get("unchanged"):
                log(str(exc))
                return _dropped(registry, repo, built, record, exc.detail,
                                duration=time.monotonic() - started)
            raise BuildError(f"the image was pushed as {repo}@{built.image.digest} but "
                             f"registering it as a candidate failed: {exc}") from exc
        return {"nvr": str(nvr), "digest": built.image.digest, "repository": repo,
                "reference": f"{registry.host}/{repo}@{built.image.digest}",
                "name": name, "version": version, "release": release,
                "tag": nvr.version_release, "record": record_digest,
                "base": record["base"], "source": record["source"],
                "verified": verify, "reused": False, "duration_seconds": round(duration, 3),
                "packages_digest": packages_digest(built.packages),
                "dropped": False, "candidate": candidate}
    finally:
        if early is not None:
            await early.close()
        await asyncio.to_thread(remove_work, top, background=clean_in_background)


def help_of(root: Path) -> dict[str, str]:
    """The source's help file (``help.md``, else ``README.md``) as the registration's
    ``help`` (indexed for search; cut at 64 KiB), or nothing."""
    found = help_file(root)
    if found is None:
        return {}
    return {"help": found.read_text(encoding="utf-8", errors="replace")[:64 * 1024]}


def candidate_inputs(record: dict[str, Any], built: LocalBuild) -> dict[str, Any]:
    """What ``POST /api/v1/candidates`` records of a build: source, base, packages."""
    source = record["source"]
    inputs: dict[str, Any] = {
        "source": {"url": source["url"], "commit": source["commit"]},
        "packages": [{"name": p.get("name", ""), "version": p.get("version", ""),
                      "arch": p.get("arch", "")} for p in built.packages],
    }
    if built.base is not None:
        ref = parse_image_ref(built.base.reference)
        inputs["base"] = {"repository": ref.repository,
                          "tag": None if ref.digest else ref.tag,  # pinned: no stream
                          "digest": built.base.digest}
    return inputs


def _dropped(registry: Registry, repo: str, built: LocalBuild, record: dict[str, Any],
             detail: dict[str, Any], *, duration: float) -> dict[str, Any]:
    """What ``--json`` prints for a rebuild the server found unchanged (nothing registered)."""
    same = detail.get("same_as") or {}
    return {"nvr": same.get("nvr"), "digest": same.get("digest"), "repository": repo,
            "reference": f"{registry.host}/{repo}@{same.get('digest')}",
            "built_digest": built.image.digest, "base": record["base"],
            "source": record["source"], "verified": False, "reused": False,
            "dropped": True, "unchanged": same, "duration_seconds": round(duration, 3),
            "candidate": None}


def _reused(registry: Registry, repo: str, existing: Reusable, *, verified: bool,
            duration: float, log: Callable[[str], None]) -> dict[str, Any]:
    """What ``--json`` prints for a build that was already there."""
    build, record = existing.build, existing.record
    digest = str(build["digest"])
    log(f"reused: {build['nvr']} ({repo}@{digest}) was built from the same commit, base "
        "and Containerfile (--rebuild builds a new release)")
    return {"nvr": str(build["nvr"]), "digest": digest, "repository": repo,
            "reference": f"{registry.host}/{repo}@{digest}",
            "name": build["name"], "version": build["version"], "release": build["release"],
            "tag": build["tag"], "record": existing.record_digest,
            "base": record.get("base"), "source": record.get("source"),
            "verified": verified, "reused": True, "duration_seconds": round(duration, 3),
            "packages_digest": packages_digest(record.get("packages") or []),
            "candidate": build}


def packages_digest(packages: list[dict[str, str]]) -> str:
    """One digest for a build's OS package list (name, version, arch): two builds with the
    same packages have the same one -- the rebuild loop's
    (:func:`strata.release.rebuild.packages_digest`, recorded with the candidate)."""
    return list_digest(Package(str(p.get("name", "")), str(p.get("version", "")),
                               str(p.get("arch", ""))) for p in packages)


def _difference(first: LocalBuild, second: LocalBuild) -> str:
    """The message of a ``--verify`` mismatch: every differing layer, path and field."""
    lines = [f"not reproducible: {first.image.digest} != {second.image.digest}"]
    lines += image_differences(first.image.layers, second.image.layers,
                               (first.image.config, second.image.config))
    return "\n".join(lines)
