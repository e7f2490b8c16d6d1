"""Signing released digests, inside the release's own transaction.

:class:`TrustSigner` is what the release engine calls (``ReleaseSigner`` of
:mod:`strata.release.publish`), and what other release artifacts (SBOM, provenance) use to
sign their manifests:

1. ``await prepare(builds)`` / ``await prepare_digests(repository, digests)`` -- before the
   publish transaction: the signature's blobs (the payload naming the digest, the tag form's
   config, the empty config) are pushed into the repository through the registry's own
   upload path (bytes in the blob store, rows and links committed). They hold no signature:
   a payload only names the digest; an unused one is collected like any unreferenced blob.
2. ``sign_digest(tx, namespace, repository, digest, at=, release=)`` -- inside the publish
   transaction, after the release's writes: refuses a digest the release did not publish
   (neither a released build nor a manifest whose subject is one), takes the namespace's
   current key (creating it, encrypted with the passphrase, when the namespace has none),
   signs the payload and stores the tag form (``sha256-<hex>.sig``, appended to what is
   there, as cosign and containers/image do) and one OCI 1.1 referrer. A digest already
   signed by the current key is left as it is (idempotent).

3. ``await sign_artifact(namespace, repository, digest)`` -- steps 1 and 2 in a transaction of
   their own, for an artifact attached after the publish committed (SBOM, provenance): its
   subject must be a released build.

The passphrase and opened keys live only in this object; nothing here logs a secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
from collections.abc import AsyncIterator, Iterable, Sequence

from strata.errors import Code, RegistryError
from strata.meta.key_store import CURRENT, KeyRecord, KeyStore, TrustWriter
from strata.meta.release_store import ReleaseWriter
from strata.oci.digest import Digest
from strata.oci.names import ManifestRef, RepositoryName
from strata.registry.service import Registry
from strata.release.errors import ReleaseError
from strata.release.model import Build, Release
from strata.trust import cosign, keys

log = logging.getLogger("strata.trust")


class SigningUnavailable(ReleaseError):
    """The release cannot be signed (no passphrase, wrong passphrase, damaged key)."""


def _refused(message: str) -> ReleaseError:
    return ReleaseError(Code.CONFLICT, {"rule": "signature-release-only"}, message)


def _unavailable(message: str) -> SigningUnavailable:
    return SigningUnavailable(Code.UNAVAILABLE, None, message)


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


class TrustSigner:
    """Signs what a release publishes, with each namespace's release key."""

    def __init__(self, registry: Registry, passphrase: keys.Passphrase | None, *,
                 public_host: str, actor: str = "release",
                 store: KeyStore | None = None) -> None:
        self._registry = registry
        self._store = store
        self._passphrase = passphrase
        self.public_host = public_host
        self._actor = actor
        self._opened: dict[str, keys.SigningKey] = {}

    @property
    def configured(self) -> bool:
        """Whether there is a passphrase to sign with."""
        return self._passphrase is not None

    def docker_reference(self, repository: str) -> str:
        """The identity a signature names: ``host[:port]/repository``."""
        return f"{self.public_host}/{repository}"

    # -- before the transaction ------------------------------------------------------------
    async def prepare(self, builds: Sequence[Build]) -> None:
        """Push the signature blobs of ``builds`` (release.publish's ``ReleaseSigner``)."""
        by_repo: dict[str, list[str]] = {}
        for build in builds:
            by_repo.setdefault(build.repository, []).append(build.digest)
        for repository, digests in sorted(by_repo.items()):
            await self.prepare_digests(repository, digests)

    async def prepare_digests(self, repository: str, digests: Iterable[str]) -> None:
        """Push the blobs that signing ``digests`` of ``repository`` will reference."""
        repo = RepositoryName.parse(repository)
        for digest in digests:
            payload = cosign.payload(self.docker_reference(repository), digest)
            existing = await self._existing_layers(repo, digest)
            config = cosign.tag_config([*existing, cosign.Layer.unsigned(payload)])
            for blob in (payload, config, cosign.EMPTY_CONFIG):
                await self._put_blob(repo, blob)

    async def _existing_layers(self, repo: RepositoryName, digest: str) -> list[cosign.Layer]:
        try:
            record = await self._registry.manifests.get(
                repo, ManifestRef(tag=cosign.signature_tag(digest)))
        except RegistryError:  # no signature yet (MANIFEST_UNKNOWN, NAME_UNKNOWN)
            return []
        return cosign.layers_of(record.content)

    async def _put_blob(self, repo: RepositoryName, data: bytes) -> None:
        digest = Digest.parse("sha256:" + hashlib.sha256(data).hexdigest())
        try:
            await self._registry.blobs.open(repo, digest)  # linked: touched, kept
            return
        except RegistryError:  # BLOB_UNKNOWN: push it
            pass
        upload = await self._registry.uploads.start(repo)
        await self._registry.uploads.finish(repo, upload.id, digest, _once(data), len(data))

    # -- after the publish: artifacts attached to released images ---------------------------
    async def sign_artifact(self, namespace: str, repository: str, digest: str) -> str | None:
        """Sign ``digest`` -- a release artifact (SBOM, provenance) whose ``subject`` is a
        released build of ``repository`` -- in a transaction of its own (for artifacts pushed
        after the publish committed). Refused (CONFLICT, rule ``signature-release-only``)
        for anything else; None when the current key signed it already."""
        if self._store is None:
            raise _unavailable("this signer has no key store (sign inside the publish instead)")
        store = self._store
        await self.prepare_digests(repository, [digest])
        at = store.now()
        return await store.db.write(lambda conn, _batch: self.sign_digest(
            KeyStore.trust_writer(conn), namespace, repository, digest, at=at))

    # -- inside the transaction ------------------------------------------------------------
    def sign(self, tx: ReleaseWriter, release: Release, builds: Sequence[Build],
             at: float) -> None:
        """Sign every build ``release`` published (release.publish's ``ReleaseSigner``)."""
        for build in builds:
            self.sign_digest(tx.trust(), release.namespace, build.repository, build.digest,
                             at=at, release=release.name)

    def sign_digest(self, tx: TrustWriter, namespace: str, repository: str, digest: str, *,
                    at: float, release: str | None = None) -> str | None:
        """Sign ``digest`` of ``repository`` with ``namespace``'s current key, in ``tx``; the
        digest of the referrer written (None: already signed by that key)."""
        if not tx.released(repository, digest):
            raise _refused(f"{repository}@{digest} is not published by a release: not signed")
        subject = tx.descriptor(repository, digest)
        if subject is None:
            raise _refused(f"{repository}@{digest} is not in the registry: not signed")
        key = self._key(tx, namespace, at)
        payload = cosign.payload(self.docker_reference(repository), digest)
        tag = cosign.signature_tag(digest)
        existing = tx.tagged(repository, tag)
        old = cosign.layers_of(existing) if existing else []
        payload_digest = "sha256:" + hashlib.sha256(payload).hexdigest()
        for layer in old:
            if layer.digest == payload_digest and _verifies(key, payload, layer.signature_b64):
                return None
        layer = cosign.Layer.of(payload, key.sign(payload))
        tag_form = cosign.artifacts([*old, layer], subject)
        referrer = cosign.artifacts([layer], subject)
        tx.put_manifest(repository, tag_form.tag_manifest, at, tag=tag, actor=self._actor,
                        release=release)
        return tx.put_manifest(repository, referrer.referrer_manifest, at)

    def _key(self, tx: TrustWriter, namespace: str, at: float) -> keys.SigningKey:
        if self._passphrase is None:
            raise _unavailable("release signing is not configured (set "
                               f"${keys.PASSPHRASE_ENV} or --signing-passphrase-file)")
        record = tx.current(namespace)
        if record is None:
            if not tx.namespace_exists(namespace, lock=True):
                raise _refused(f"unknown namespace {namespace!r}")
            record = tx.current(namespace)  # another node made it while we waited
        if record is None:
            sealed = keys.generate(self._passphrase)
            record = KeyRecord(sealed.key_id, namespace, CURRENT, sealed.public_pem,
                               sealed.private_pem, at, self._actor, None)
            tx.add(record)
            log.info("created release key %s for namespace %s", sealed.key_id[:12], namespace)
        return self.open(record)

    def open(self, record: KeyRecord) -> keys.SigningKey:
        opened = self._opened.get(record.key_id)
        if opened is None:
            if self._passphrase is None:
                raise _unavailable("release signing is not configured")
            try:
                opened = keys.SigningKey(keys.SealedKey(record.key_id, record.public_pem,
                                                        record.private_pem), self._passphrase)
            except keys.KeyProblem as exc:
                raise _unavailable(str(exc)) from None
            self._opened[record.key_id] = opened
        return opened

    def new_key(self, namespace: str, at: float, by: str) -> KeyRecord:
        """A new current key record for ``namespace`` (rotation), sealed with the passphrase."""
        if self._passphrase is None:
            raise _unavailable("release signing is not configured")
        sealed = keys.generate(self._passphrase)
        return KeyRecord(sealed.key_id, namespace, CURRENT, sealed.public_pem,
                         sealed.private_pem, at, by, None)


def _verifies(key: keys.SigningKey, payload: bytes, signature_b64: str) -> bool:
    try:
        der = base64.b64decode(signature_b64, validate=True)
    except (binascii.Error, ValueError):
        return False
    return keys.verify(key.public_pem, payload, der)
