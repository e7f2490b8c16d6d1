"""Editing an image's source, summary, status and maintainers (``strata image set``,
``strata image maintainers``).

Who may: releng and admin everything; a maintainer of the image its source (URL, branch) and
summary (:data:`strata.review.policy.MAINTAINER_FIELDS`); the caller (the HTTP handler) says
which. A source URL must pass the server's allow-list (:func:`strata.config.source_refusal`).
Every change is recorded in the image's events (who, when, what).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from strata.config import source_refusal
from strata.errors import Code, RegistryError
from strata.meta.review_store import ReviewReader, ReviewStore, ReviewWriter
from strata.release.model import (
    Image,
    ImageStatus,
    invalid,
    not_found,
    parse_repository,
)
from strata.review.policy import FIELDS, forbidden_fields

_ACCOUNT = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")  # as strata user add takes them


def image_or_fail(tx: ReviewReader, repository: str) -> Image:
    image = tx.image(repository)
    if image is None:
        raise not_found(f"unknown image {repository!r}")
    return image


def check_changes(changes: Mapping[str, Any], allow: tuple[str, ...]) -> dict[str, Any]:
    """The changes, validated (values are text; ``status`` one of the statuses; the source
    URL allowed by the server)."""
    unknown = set(changes) - FIELDS
    if unknown:
        raise invalid(f"unknown image field(s) {sorted(unknown)} (can change: {sorted(FIELDS)})")
    if not changes:
        raise invalid("nothing to change (source_url, source_branch, summary, status)")
    out: dict[str, Any] = {}
    for key, value in changes.items():
        if value is not None and not isinstance(value, str):
            raise invalid(f"{key} must be a string")
        out[key] = value.strip() if isinstance(value, str) and value.strip() else None
    if "status" in out and out["status"] not in {s.value for s in ImageStatus}:
        raise invalid(f"unknown image status {out['status']!r} "
                          f"({', '.join(s.value for s in ImageStatus)})")
    if out.get("source_url") is not None:
        refusal = source_refusal(out["source_url"], allow)
        if refusal is not None:
            raise RegistryError(Code.DENIED, {"source_url": out["source_url"][:200]},
                                message=refusal)
    for key, limit in (("source_url", 1024), ("source_branch", 255), ("summary", 4000)):
        if out.get(key) is not None and len(out[key]) > limit:
            raise invalid(f"{key} longer than {limit} characters")
    return out


class ImageSources:
    def __init__(self, db: ReviewStore, allow: tuple[str, ...]) -> None:
        self.db = db
        self.allow = allow

    async def set_image(self, repository: str, changes: Mapping[str, Any], *, actor: str,
                        releng: bool) -> Image:
        repo = parse_repository(repository)
        values = check_changes(changes, self.allow)
        refused = forbidden_fields(set(values), releng=releng)
        if refused:
            needs = "needs role releng or admin"
            raise RegistryError(Code.DENIED, {"needs": needs, "fields": sorted(refused)},
                                message=f"{Code.DENIED.message}: changing "
                                        f"{', '.join(sorted(refused))} {needs}")

        def go(tx: ReviewWriter) -> Image:
            before = image_or_fail(tx, repo.value)
            tx.update_image(repo.value, values)
            old = {"source_url": before.source_url, "source_branch": before.source_branch,
                   "summary": before.summary, "status": before.status.value}
            tx.record_review_event(repo.value, "changed", actor, self.db.now(),
                                   detail={k: {"old": old[k], "new": v}
                                           for k, v in values.items()})
            return image_or_fail(tx, repo.value)
        return await self.db.write(go)

    async def maintainers(self, repository: str, *, add: str | None, remove: str | None,
                          actor: str) -> dict[str, Any]:
        """Add or remove one maintainer (releng/admin): recorded on the image and as the
        account's maintainer grant on it (``granted``: whether an account of that name exists
        and now has the grant, or no longer has it)."""
        repo = parse_repository(repository)
        if (add is None) == (remove is None):
            raise invalid("give exactly one of add or remove")
        name = (add or remove or "").strip()
        if not _ACCOUNT.fullmatch(name):
            raise invalid(f"a maintainer is an account name (1-64 of a-z 0-9 . _ -), not "
                          f"{name[:80]!r}")

        def go(tx: ReviewWriter) -> dict[str, Any]:
            image = image_or_fail(tx, repo.value)
            names = list(image.maintainers)
            if add is not None and name not in names:
                names.append(name)
            elif remove is not None and name in names:
                names.remove(name)
            tx.update_image(repo.value, {"maintainers": names})
            account = tx.set_review_grant(name, repo.value, add is not None)
            tx.record_review_event(
                repo.value, "maintainer-added" if add is not None else "maintainer-removed",
                actor, self.db.now(), detail={"maintainer": name})
            return {**image_or_fail(tx, repo.value).to_json(), "account": account}
        return await self.db.write(go)

    async def events(self, repository: str) -> list[dict[str, Any]]:
        repo = parse_repository(repository)
        return await self.db.read(lambda tx: tx.image_events(repo.value))
