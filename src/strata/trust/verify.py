"""``strata verify <ref>``: prove that a released image came from its recorded source.

Four steps, each with a verdict (PASS/FAIL and the reason); any FAIL fails the whole:

1. **signature** -- the manifest digest the reference resolves to (hashed here, not taken from
   the server's header) carries a cosign signature (OCI 1.1 referrer or the ``sha256-<hex>.sig``
   tag form, :mod:`strata.trust.cosign`) whose simple-signing payload names that digest and
   this repository, and verifies against one of the namespace's published release keys
   (``GET /keys/<ns>.pub``: current and retired) or the keys of ``--key FILE``;
2. **provenance** -- a referrer of the image with artifactType ``application/vnd.in-toto+json``
   that is itself signed by one of those keys, whose subject is the image, and that parses as
   an in-toto Statement v1 with our SLSA provenance v1 predicate (unsigned ones are ignored:
   anyone with push rights can push a referrer);
3. **rebuild** -- the recorded source URL is cloned at the recorded commit, the Containerfile's
   digest is checked, and the image is built again with the builder ``strata build`` uses
   (same build arguments, target, network, compression, release label,
   ``SOURCE_DATE_EPOCH`` = the recorded one, else the commit time), every image the
   Containerfile names pulled at its recorded digest (the base's tag may have moved since);
4. **digest** -- the rebuilt manifest digest equals the signed one.

Every byte read from the registry is checked against its digest.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from strata.build.builder import BuildOptions, build_image, plan_build, remove_work
from strata.build.context import open_source
from strata.build.errors import BuildError
from strata.build.publish import builder_labels
from strata.build.remote import ImageRef, PulledImage, Puller, parse_image_ref
from strata.client.registry import ClientError, RegistryClient
from strata.trust import cosign, keys
from strata.trust.provenance import (
    PROVENANCE_ARTIFACT_TYPE,
    Provenance,
    ProvenanceError,
    parse_provenance,
)

__all__ = ["PinnedPuller", "Step", "Verdict", "Verifier", "split_pems"]

MAX_ARTIFACT_BYTES = 8 << 20


@dataclass(frozen=True)
class Step:
    name: str
    ok: bool
    reason: str

    def line(self) -> str:
        return f"{self.name:<11} {'PASS' if self.ok else 'FAIL'}  {self.reason}"

    def to_json(self) -> dict[str, Any]:
        return {"step": self.name, "ok": self.ok, "reason": self.reason}


@dataclass(frozen=True)
class Verdict:
    repository: str
    reference: str
    digest: str | None
    steps: tuple[Step, ...]
    rebuilt_digest: str | None = None

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(step.ok for step in self.steps)

    def text(self) -> str:
        lines = [step.line() for step in self.steps]
        lines.append(f"{'VERIFIED' if self.ok else 'NOT VERIFIED'}: "
                     f"{self.repository}@{self.digest or '?'}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {"repository": self.repository, "reference": self.reference,
                "digest": self.digest, "verified": self.ok,
                "rebuilt_digest": self.rebuilt_digest,
                "steps": [step.to_json() for step in self.steps]}


def split_pems(text: str) -> list[str]:
    """Every ``PUBLIC KEY`` PEM block of ``text`` (a ``.pub`` file may hold several)."""
    blocks, current = [], []
    for line in text.splitlines():
        if line.startswith("-----BEGIN "):
            current = [line]
        elif current:
            current.append(line)
            if line.startswith("-----END "):
                blocks.append("\n".join(current) + "\n")
                current = []
    return blocks


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class PinnedPuller(Puller):
    """A :class:`Puller` that fetches every image at the digest the provenance recorded for
    it (keyed by the normalised reference), keeping the reference as the Containerfile wrote
    it (the image's base annotations depend on it)."""

    def __init__(self, client: RegistryClient, cache: Path, pins: Mapping[str, str]) -> None:
        super().__init__(client, cache)
        self.pins = {str(parse_image_ref(ref)): digest for ref, digest in pins.items()}

    async def pull(self, ref: ImageRef) -> PulledImage:
        digest = self.pins.get(str(ref))
        if digest is None:
            raise BuildError(f"{ref}: the provenance records no digest for this image")
        pulled = await super().pull(replace(ref, digest=digest))
        return replace(pulled, reference=str(ref))


class Verifier:
    """Verifies images of the registry at ``url`` (``client``) against ``public_keys``
    (PEM); ``cache_dir``: base images' blobs and unpacked layers; ``work_dir``: where the
    rebuild's checkout and work go (a fresh directory inside, removed at the end)."""

    def __init__(self, client: RegistryClient, url: str, public_keys: Sequence[str], *,
                 cache_dir: Path, work_dir: Path | None = None,
                 log: Callable[[str], None] = lambda _: None) -> None:
        self.client = client
        self.url = url
        self.keys = list(public_keys)
        self.cache_dir = cache_dir
        self.work_dir = work_dir
        self.log = log

    # -- reading, with every byte checked against its digest ------------------------------
    async def _manifest(self, repo: str, reference: str) -> tuple[str, bytes]:
        manifest = await self.client.get_manifest(repo, reference)
        digest = _sha256(manifest.content)
        if reference.startswith("sha256:") and digest != reference:
            raise ClientError(0, None, f"{repo}@{reference}: the registry answered other bytes")
        return digest, manifest.content

    async def _blob(self, repo: str, digest: str) -> bytes:
        data = await self.client.get_blob(repo, digest)
        if _sha256(data) != digest:
            raise ClientError(0, None, f"{repo}@{digest}: blob does not match its digest")
        return data

    # -- step 1 (and the signature of each artifact) --------------------------------------
    async def signature(self, repo: str, digest: str) -> tuple[bool, str]:
        """Whether ``repo@digest`` carries a signature that verifies with one of the keys."""
        if not self.keys:
            return False, "no public key to verify with"
        layers: list[cosign.Layer] = []
        try:
            index = await self.client.referrers(repo, digest, cosign.SIGNATURE_ARTIFACT_TYPE)
            for desc in index.get("manifests") or []:
                _, body = await self._manifest(repo, str(desc["digest"]))
                layers += cosign.layers_of(body)
        except ClientError as exc:
            if exc.status != 404:
                raise
        try:
            _, body = await self._manifest(repo, cosign.signature_tag(digest))
            layers += cosign.layers_of(body)
        except ClientError as exc:
            if exc.status != 404:
                raise
        if not layers:
            return False, f"no signature of {digest}"
        problems: list[str] = []
        for layer in dict.fromkeys(layers):
            payload = await self._blob(repo, layer.digest)
            try:
                parsed = cosign.parse_payload(payload)
                der = base64.b64decode(layer.signature_b64, validate=True)
            except (ValueError, binascii.Error) as exc:
                problems.append(str(exc))
                continue
            if parsed.digest != digest:
                problems.append(f"a signature names {parsed.digest}, not {digest}")
                continue
            if parsed.docker_reference.split("/", 1)[-1] != repo:
                problems.append(f"a signature names {parsed.docker_reference}, not {repo}")
                continue
            for pem in self.keys:
                if keys.verify(pem, payload, der):
                    return True, (f"signed by key {keys.key_id(pem)[:12]} as "
                                  f"{parsed.docker_reference}")
            problems.append("a signature does not verify with the namespace's keys")
        return False, "; ".join(dict.fromkeys(problems))

    # -- step 2 ---------------------------------------------------------------------------
    async def provenance(self, repo: str, digest: str) -> tuple[Provenance | None, str]:
        try:
            index = await self.client.referrers(repo, digest, PROVENANCE_ARTIFACT_TYPE)
        except ClientError as exc:
            return None, f"cannot list the referrers: {exc}"
        problems: list[str] = []
        for desc in index.get("manifests") or []:
            artifact = str(desc["digest"])
            _, body = await self._manifest(repo, artifact)
            doc = json.loads(body)
            if (doc.get("subject") or {}).get("digest") != digest:
                problems.append(f"{artifact[:19]}: subject is not {digest}")
                continue
            signed, why = await self.signature(repo, artifact)
            if not signed:
                problems.append(f"{artifact[:19]}: {why}")
                continue
            layers = doc.get("layers") or []
            if len(layers) != 1 or int(layers[0].get("size", 0)) > MAX_ARTIFACT_BYTES:
                problems.append(f"{artifact[:19]}: not one statement layer")
                continue
            try:
                prov = parse_provenance(await self._blob(repo, str(layers[0]["digest"])))
            except ProvenanceError as exc:
                problems.append(f"{artifact[:19]}: {exc}")
                continue
            if digest not in [d for _, d in prov.subjects]:
                problems.append(f"{artifact[:19]}: the statement's subject is not {digest}")
                continue
            return prov, (f"{artifact[:19]} {why}; source {prov.source_url}@"
                          f"{(prov.source_commit or '?')[:12]}, base {prov.base_digest}")
        if not problems:
            return None, f"no provenance referrer of {digest}"
        return None, "; ".join(problems)

    # -- steps 3 and 4 --------------------------------------------------------------------
    async def rebuild(self, prov: Provenance) -> tuple[str | None, str]:
        if not prov.source_url or not prov.source_commit:
            return None, "the provenance records no source URL and commit: cannot rebuild"
        if prov.source_dirty:
            return None, (f"the image was built from a checkout of {prov.source_commit[:12]} "
                          "with uncommitted changes: the commit does not describe it")
        top = Path(tempfile.mkdtemp(prefix="strata-verify.", dir=self.work_dir))
        try:
            spec = prov.source_url + (f"#:{prov.context}" if prov.context else "")
            source = await asyncio.to_thread(
                open_source, spec, file=prov.containerfile, commit=prov.source_commit,
                source_date_epoch=prov.source_date_epoch, clone_dir=top / "source")
            if source.commit != prov.source_commit:
                return None, f"{prov.source_url} has no commit {prov.source_commit}"
            if prov.containerfile_digest is not None:
                found = _sha256(source.containerfile.read_bytes())
                if found != prov.containerfile_digest:
                    return None, (f"the Containerfile at {prov.source_commit[:12]} is {found}, "
                                  f"the provenance says {prov.containerfile_digest}")
            zstd = prov.compression == "zstd"
            opts = BuildOptions(cache_dir=self.cache_dir, containerfile=prov.containerfile,
                                build_args=dict(prov.build_args), target=prov.target,
                                network="host" if prov.network == "host" else "none",
                                compression="zstd" if zstd else "gzip", level=3 if zstd else 1)
            pins = dict(prov.images)
            plan = await plan_build(source, opts,
                                    PinnedPuller(self.client, self.cache_dir, pins), self.url)
            work = top / "work"
            work.mkdir()
            built = await asyncio.to_thread(
                build_image, plan, opts, work,
                extra_labels=builder_labels(prov.release or "", source.commit),
                log=self.log, output=lambda _: None)
        except BuildError as exc:
            return None, f"the recorded source does not build: {exc}"
        finally:
            await asyncio.to_thread(remove_work, top)
        return built.image.digest, (f"rebuilt {prov.source_url}@{prov.source_commit[:12]} "
                                    f"(SOURCE_DATE_EPOCH={source.source_date_epoch}) on the "
                                    f"recorded base: {built.image.digest}")

    async def verify(self, repo: str, reference: str) -> Verdict:
        try:
            digest, _ = await self._manifest(repo, reference)
        except ClientError as exc:
            return Verdict(repo, reference, None, (Step("signature", False,
                                                        f"cannot resolve {reference}: {exc}"),))
        signed, why = await self.signature(repo, digest)
        steps = [Step("signature", signed, why)]
        prov, why = await self.provenance(repo, digest)
        steps.append(Step("provenance", prov is not None, why))
        if prov is None:
            steps += [Step("rebuild", False, "no trusted provenance to rebuild from"),
                      Step("digest", False, "nothing rebuilt to compare")]
            return Verdict(repo, reference, digest, tuple(steps))
        rebuilt, why = await self.rebuild(prov)
        steps.append(Step("rebuild", rebuilt is not None, why))
        if rebuilt is None:
            steps.append(Step("digest", False, "nothing rebuilt to compare"))
        elif rebuilt == digest:
            steps.append(Step("digest", True, f"the rebuild gives the signed digest {digest}"))
        else:
            steps.append(Step("digest", False, f"the rebuild gives {rebuilt}, the registry "
                                               f"serves {digest}"))
        return Verdict(repo, reference, digest, tuple(steps), rebuilt)
