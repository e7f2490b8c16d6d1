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

from strata.errors import Code, RegistryError
from strata.release.model import is_cosign_tag
from strata.release.streams import check_registry_write


class ReleaseTagPolicy:
    """``TagPolicy`` enforcing the stream rules on managed repositories.

    Whether a repository is managed is read by the store inside the transaction that writes
    the tag, so an image registered a moment ago is protected from the next write on."""

    def check_sync(self, repository: str, tag: str, current: str | None,
                   new: str | None, managed: bool) -> None:
        if not managed or is_cosign_tag(tag):
            return
        if new is not None and new == current:
            return  # re-push of the same digest: a no-op
        violation = check_registry_write(tag, current, new, by_release_engine=False)
        if violation is not None:
            raise RegistryError(
                Code.DENIED,
                {"rule": violation.rule, "repository": repository, "tag": tag},
                message=f"{violation.message} (rule {violation.rule})")
