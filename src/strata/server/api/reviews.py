"""/api/v1/reviews: review requests of new images (issue 14).

* ``POST /api/v1/reviews`` ``{"repository": "<ns>/<name>", "git": URL, "branch": BR}``: any
  account (``strata image submit``); the URL must pass ``--source-allow``; answers the request
  (201) with its automated checks, run at once.
* ``GET /api/v1/reviews[?status=open|approved|rejected&namespace=]``, ``GET .../{id}``.
* ``POST /api/v1/reviews/{id}/comment`` ``{"comment": TEXT}``: reviewer, releng, admin, or the
  submitter.
* ``POST /api/v1/reviews/{id}/approve|reject`` ``{"comment": TEXT}``: reviewer, releng, admin;
  never the submitter of that request.
"""

from __future__ import annotations

from aiohttp import web

from strata.release.model import invalid, not_found
from strata.server.api import pages, parse
from strata.server.api.auth import Need, actor, authorize, enforced, is_reviewer
from strata.server.api.context import reviews_of
from strata.server.http import json_response


def _id(request: web.Request) -> int:
    text = request.match_info["id"]
    if not (text.isascii() and text.isdigit()) or len(text) > 12:
        raise invalid(f"invalid review request id {text[:20]!r}")
    if int(text) > parse.MAX_ID:  # no row has it (and PostgreSQL's integer cannot hold it)
        raise not_found(f"no review request {text}")
    return int(text)


async def submit(request: web.Request) -> web.Response:
    authorize(request, Need.ACCOUNT)
    data = await parse.json_body(request)
    out = await reviews_of(request).submit(
        parse.required(data, "repository"), parse.required(data, "git"),
        parse.text(data, "branch"), actor=actor(request))
    return json_response(out, status=201)


async def list_reviews(request: web.Request) -> web.Response:
    authorize(request, Need.READER)
    items = await reviews_of(request).list(status=parse.query(request, "status"),
                                           namespace=parse.query(request, "namespace"),
                                           limit=pages.size(request) + 1,
                                           before=pages.id_cursor(request))
    page, headers = pages.fetched(request, items, lambda r: str(r["id"]))
    return json_response({"reviews": page}, headers=headers)


async def show(request: web.Request) -> web.Response:
    authorize(request, Need.READER)
    return json_response(await reviews_of(request).show(_id(request)))


async def comment(request: web.Request) -> web.Response:
    authorize(request, Need.ACCOUNT)
    request_id = _id(request)
    data = await parse.json_body(request)
    out = await reviews_of(request).comment(request_id, parse.text(data, "comment"),
                                            actor=actor(request),
                                            reviewer=is_reviewer(request))
    return json_response(out)


async def approve(request: web.Request) -> web.Response:
    return await _decide(request, True)


async def reject(request: web.Request) -> web.Response:
    return await _decide(request, False)


async def _decide(request: web.Request, approve: bool) -> web.Response:
    authorize(request, Need.REVIEWER)
    request_id = _id(request)
    data = await parse.json_body(request)
    out = await reviews_of(request).decide(request_id, approve, parse.text(data, "comment"),
                                           actor=actor(request), enforced=enforced(request))
    return json_response(out)
