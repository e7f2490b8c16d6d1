"""The registry's write policy for release-managed repositories (``TagPolicy`` of the registry).

This is the one place on the ``/v2/`` side that enforces the invariant of
:mod:`strata.release.streams`: **in a release-managed repository every stream tag is written
only by the release engine**. The registry's store calls it inside every transaction that
writes a tag (manifest PUT with a tag or ``?tag=``), deletes a tag, deletes a manifest or
unlinks a blob, with ``managed`` read in that same transaction: a repository is
release-managed when its image is registered or its first path component is a registered
namespace (:func:`strata.meta.tagwrite.is_managed`).

* Tag writes are judged by :func:`strata.release.streams.check_registry_write` with
  ``by_release_engine=False``: every tag of the stream grammar (NVR, Name-Version, ``latest``)
  is refused (rule ``stream-tags-release-only``); a re-push of the digest a tag already has
  writes nothing and passes. Cosign / referrers-API fallback tags (``sha256-<64 hex>`` with an
  optional ``.att`` or ``.sbom`` suffix) are not streams and are exempt; the signature tags
  (``sha256-<hex>.sig``) and every pushed manifest that is a cosign signature (a
  simple-signing payload layer, or the signature referrer artifact type) are the release's:
  refused with rule ``signature-release-only`` (issue 16). So is a pushed manifest whose
  artifact type is the release's SBOM or provenance type (CycloneDX or in-toto JSON): rule
  ``attestation-release-only`` (:func:`strata.release.streams.check_attestation_push`).
* Deletes of content are judged by :func:`strata.release.streams.check_content_delete`: the
  manifest of a pending or released build, a child manifest of one, a blob one of them
  references, or content of a manifest that carries a stream tag, is refused (rule
  ``build-protected``).

Both hold for every account, admin included: the release engine writes tags inside its own
transaction, not through ``/v2/``. Repositories that are not release-managed (scratch space
such as ``demo/busybox``) accept any write.
"""

from __future__ import annotations

from collections.abc import Sequence

from strata.errors import Code, RegistryError
from strata.meta.records import HeldBy
from strata.oci import mediatypes as mt
from strata.release.streams import (
    StreamViolation,
    check_attestation_push,
    check_content_delete,
    check_registry_write,
    check_signature_push,
)


def _denied(violation: StreamViolation, detail: dict[str, str]) -> RegistryError:
    return RegistryError(Code.DENIED, {"rule": violation.rule, **detail},
                         message=f"{violation.message} (rule {violation.rule})")


class ReleaseTagPolicy:
    """``TagPolicy`` enforcing the stream rules on release-managed repositories.

    Whether a repository is managed is read by the store inside the transaction that writes
    the tag, so an image or namespace registered a moment ago is protected from the next
    write on."""

    def check_sync(self, repository: str, tag: str, current: str | None,
                   new: str | None, managed: bool) -> None:
        if not managed:
            return
        violation = check_registry_write(tag, current, new, by_release_engine=False,
                                         repository=repository)
        if violation is not None:
            raise _denied(violation, {"repository": repository, "tag": tag})

    def check_manifest_sync(self, repository: str, artifact_type: str | None,
                            layer_types: Sequence[str], managed: bool) -> None:
        if not managed:
            return
        violation = check_signature_push(
            artifact_type == mt.COSIGN_SIGNATURE_ARTIFACT or mt.COSIGN_PAYLOAD in layer_types,
            repository)
        if violation is None:
            violation = check_attestation_push(artifact_type in mt.RELEASE_ATTESTATIONS,
                                               repository)
        if violation is not None:
            raise _denied(violation, {"repository": repository})

    def check_delete_sync(self, repository: str, digest: str, is_blob: bool, managed: bool,
                          holders: Sequence[HeldBy]) -> None:
        if not managed:
            return
        violation = check_content_delete(digest, holders, repository=repository,
                                         is_blob=is_blob)
        if violation is not None:
            raise _denied(violation, {"repository": repository,
                                      "blob" if is_blob else "manifest": digest})
