"""The review gate and who may change what of an image (pure rules, no I/O).

* A candidate build is registered into a namespace only for an ``active`` image (approved
  through ``strata image submit`` + ``strata review approve``, or registered directly by a
  release engineer or admin with ``strata image add`` / ``strata base import``, both recorded).
  Anything else — no image row, or an image still ``in-review`` — is refused, admin included,
  unless the registration is forced with a reason (releng/admin only; recorded in the image's
  history). ``retired`` images take no candidates at all (a CONFLICT, elsewhere).
* Releng and admin may change everything of an image; maintainers of the image only its source
  (URL, branch) and summary.
* A reviewer, releng or admin decides a review, never the submitter of that request.
"""

from __future__ import annotations

from strata.release.model import ImageStatus

#: Fields of an image a maintainer of it may change (releng/admin: all of :data:`FIELDS`).
MAINTAINER_FIELDS = frozenset({"source_url", "source_branch", "summary"})
FIELDS = MAINTAINER_FIELDS | {"status"}


def submit_hint(repository: str) -> str:
    return f"strata image submit {repository} --git URL [--branch BRANCH]"


def candidate_refusal(repository: str, status: ImageStatus | None, *,
                      forced: bool) -> str | None:
    """Why a candidate of ``repository`` may not be registered (None: it may)."""
    if status is ImageStatus.ACTIVE or forced or status is ImageStatus.RETIRED:
        return None
    if status is None:
        why = f"{repository} is not an image of its namespace"
    else:
        why = f"{repository} is still in review"
    return (f"{why}: candidates are registered only for approved images; submit it for "
            f"review: {submit_hint(repository)} (or, as releng/admin, --force with a --reason)")


def forbidden_fields(fields: set[str], *, releng: bool) -> set[str]:
    """The fields of ``fields`` the caller may not change (a maintainer of the image unless
    ``releng``)."""
    unknown = fields - FIELDS
    return unknown | (set() if releng else fields - MAINTAINER_FIELDS - unknown)


def decision_refusal(submitter: str, actor: str, *, enforced: bool) -> str | None:
    """Why ``actor`` may not approve or reject a request of ``submitter`` (None: may).
    ``enforced`` is False on an open registry (every caller is unverified)."""
    if enforced and actor == submitter:
        return "the submitter of a review request cannot decide it (ask a reviewer)"
    return None
