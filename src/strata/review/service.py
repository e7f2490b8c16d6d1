"""Review requests of new images (``strata image submit``, ``strata review …``).

* ``submit``: any account (the submitter). The git URL must pass the server's allow-list
  (``--source-allow``); the branch defaults to the namespace's name (one branch per namespace,
  ``f25``). The image is created ``in-review`` with that source (or, if it exists and is
  ``in-review`` with no open request, gets the new source); an ``active`` or ``retired`` image
  is a CONFLICT (change an active image's source with ``strata image set``), and so is a second
  open request. The automated checks (:mod:`strata.review.checks`) run at once and are stored
  on the request, which the answer shows.
* ``comment``: reviewers, releng, admin and the submitter.
* ``approve`` / ``reject`` with a comment: reviewers, releng, admin — never the submitter of
  the request (:func:`strata.review.policy.decision_refusal`). A request whose checks did not
  all pass cannot be approved (submit again after fixing). Approval makes the image ``active``
  with its submitter as maintainer (recorded on the image and as the account's maintainer
  grant) and records the reviewed source; rejection leaves the image ``in-review``, so nobody
  registers candidates of it until a new request is approved.
"""

from __future__ import annotations

import logging
from typing import Any

from strata.config import source_refusal
from strata.errors import Code, RegistryError
from strata.meta.review_store import ReviewReader, ReviewStore, ReviewWriter
from strata.release.inventory import namespace_for
from strata.release.model import (
    Image,
    ImageStatus,
    conflict,
    image_name_of,
    invalid,
    not_found,
    parse_repository,
)
from strata.review.checks import Checker, CheckInput, CheckResult, passed
from strata.review.policy import decision_refusal

log = logging.getLogger("strata.review")

STATUSES = ("open", "approved", "rejected")
MAX_COMMENT = 10_000


def _text(comment: str | None, what: str) -> str:
    text = (comment or "").strip()
    if not text:
        raise invalid(f"{what} needs a comment (--comment TEXT)")
    if len(text) > MAX_COMMENT:
        raise invalid(f"a comment is at most {MAX_COMMENT} characters")
    return text


def _request_or_fail(tx: ReviewReader, request_id: int, *,
                     lock: bool = False) -> dict[str, Any]:
    found = tx.request(request_id, lock=lock)
    if found is None:
        raise not_found(f"no review request {request_id}")
    return found


class Reviews:
    def __init__(self, db: ReviewStore, allow: tuple[str, ...], checker: Checker | None) -> None:
        self.db = db
        self.allow = allow
        self.checker = checker

    async def submit(self, repository: str, git: str, branch: str | None, *,
                     actor: str) -> dict[str, Any]:
        repo = parse_repository(repository)
        url = git.strip()
        refusal = source_refusal(url, self.allow)
        if refusal is not None:
            raise RegistryError(Code.DENIED, {"source_url": url[:200]}, message=refusal)
        if branch is not None and (not branch.strip() or len(branch) > 255
                                   or branch.startswith("-")):
            raise invalid(f"invalid branch {branch[:80]!r}")

        def go(tx: ReviewWriter) -> tuple[int, CheckInput]:
            ns = namespace_for(tx, repo)
            chosen = branch.strip() if branch else ns.name
            image = tx.image(repo.value, lock=True)
            now = self.db.now()
            if image is None:
                tx.add_image(Image(repo.value, ns.name, image_name_of(repo),
                                               ImageStatus.IN_REVIEW, (), url, chosen, now))
            elif image.status is not ImageStatus.IN_REVIEW:
                raise conflict(f"image {repo} is {image.status.value}: only a new image is "
                               f"submitted for review (change its source with strata image "
                               f"set {repo} --source-url URL)")
            else:
                open_id = tx.open_request_of(repo.value)
                if open_id is not None:
                    raise conflict(f"review request {open_id} of {repo} is still open")
                tx.update_image(repo.value, {"source_url": url, "source_branch": chosen})
            request_id = tx.add_request(
                repository=repo.value, namespace=ns.name, submitter=actor,
                source_url=url, source_branch=chosen, at=now)
            tx.record_review_event(repo.value, "submitted", actor, now,
                                   detail={"request": request_id, "source_url": url,
                                           "source_branch": chosen})
            bases = frozenset(i.repository for i in tx.images(ns.name)
                              if i.status is ImageStatus.ACTIVE)
            return request_id, CheckInput(repo.value, ns.name, url, chosen, bases)

        request_id, inp = await self.db.write(go)
        checks = await self._checks(inp)
        await self.db.write(lambda tx: tx.set_checks(request_id, [c.to_json() for c in checks]))
        return await self.show(request_id)

    async def _checks(self, inp: CheckInput) -> list[CheckResult]:
        if self.checker is None:
            return [CheckResult("checks", None, "not run: this server runs no checks")]
        try:
            return await self.checker(inp)
        except Exception as exc:  # a bug or an environment problem: shown on the request
            log.exception("review checks of %s failed", inp.repository)
            return [CheckResult("checks", False, f"the checks could not run: {exc}"[:2000])]

    async def show(self, request_id: int) -> dict[str, Any]:
        return await self.db.read(lambda tx: _request_or_fail(tx, request_id))

    async def list(self, *, status: str | None = None, namespace: str | None = None,
                   limit: int = 500, before: int | None = None) -> list[dict[str, Any]]:
        """Newest first, at most ``limit``; ``before``: only those older than that id."""
        if status is not None and status not in STATUSES:
            raise invalid(f"unknown review status {status!r} ({', '.join(STATUSES)})")
        return await self.db.read(lambda tx: tx.requests(
            status=status, namespace=namespace, limit=limit, before=before))

    async def comment(self, request_id: int, comment: str | None, *, actor: str,
                      reviewer: bool) -> dict[str, Any]:
        text = _text(comment, "a comment")

        def go(tx: ReviewWriter) -> dict[str, Any]:
            request = _request_or_fail(tx, request_id)
            if not reviewer and request["submitter"] != actor:
                raise RegistryError(Code.DENIED, {"needs": "role reviewer, releng or admin"},
                                    message=f"{Code.DENIED.message}: needs role reviewer, "
                                            "releng or admin (or the submitter)")
            tx.add_comment(request_id, actor, "comment", text, self.db.now())
            return _request_or_fail(tx, request_id)
        return await self.db.write(go)

    async def decide(self, request_id: int, approve: bool, comment: str | None, *,
                     actor: str, enforced: bool) -> dict[str, Any]:
        text = _text(comment, "an approval" if approve else "a rejection")

        def go(tx: ReviewWriter) -> dict[str, Any]:
            request = _request_or_fail(tx, request_id, lock=True)
            refusal = decision_refusal(request["submitter"], actor, enforced=enforced)
            if refusal is not None:
                raise RegistryError(Code.DENIED, {"submitter": request["submitter"]},
                                    message=f"{Code.DENIED.message}: {refusal}")
            if request["status"] != "open":
                raise conflict(f"review request {request_id} is already {request['status']}")
            if approve and not passed(request["checks"]):
                failed = [c["name"] for c in request["checks"] if c.get("ok") is not True]
                raise conflict(f"review request {request_id} cannot be approved: automated "
                               f"check(s) {', '.join(failed) or 'not run'} did not pass; fix "
                               "the source and submit again")
            now = self.db.now()
            status = "approved" if approve else "rejected"
            tx.decide(request_id, status, actor, now)
            tx.add_comment(request_id, actor, "approve" if approve else "reject", text, now)
            repository = request["repository"]
            if approve:
                image = tx.image(repository, lock=True)
                if image is None:
                    raise not_found(f"image {repository} is gone")
                submitter = request["submitter"]
                names = list(dict.fromkeys([*image.maintainers, submitter]))
                tx.update_image(repository, {
                    "status": ImageStatus.ACTIVE.value, "maintainers": names,
                    "source_url": request["source"]["url"],
                    "source_branch": request["source"]["branch"]})
                tx.set_review_grant(submitter, repository, True)
            tx.record_review_event(repository, status, actor, now, reason=text,
                                   detail={"request": request_id,
                                           "submitter": request["submitter"]})
            return _request_or_fail(tx, request_id)
        return await self.db.write(go)
