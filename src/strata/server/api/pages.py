"""Pagination of the /api/v1 list operations, one way for all (as ``/v2/`` pages its lists).

A list operation declared ``paginated=True`` (:mod:`.spec`) takes ``n`` (page size, 1..1000,
default 100) and ``last`` (the cursor: the key of the last item of the previous page) and
answers ``Link: </api/v1/...?<its filters>&n=N&last=KEY>; rel="next"`` while more items
follow (relative, like the registry's ``Link``; no header on the last page). The key of an
item is its natural identifier: a namespace's name, an image's repository, a review's,
webhook's, delivery's or build's id, a release's name, a candidate's ``repository@digest``.

Three shapes, by how the list is read:

* :func:`after_key`: a list the use-case answers in its key's order; the page is the items
  whose key follows ``last`` (a removed item's cursor still works).
* :func:`after_item`: a list in an order that is not its key's (candidates by repository,
  then registration); the page follows the item ``last`` names (INVALID if it is gone).
* :func:`fetched`: the store applied the cursor and read ``n + 1`` items (reviews,
  deliveries, builds, releases: newest first, the query bounded).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from aiohttp import web

from strata.release.errors import invalid
from strata.server.api import parse
from strata.server.urls import next_link

T = TypeVar("T")
Headers = dict[str, str]


def size(request: web.Request) -> int:
    """The page size ``n``."""
    n: int = parse.query(request, "n")
    return n


_size = size


def cursor(request: web.Request) -> str | None:
    last: str | None = parse.query(request, "last")
    return last


def id_cursor(request: web.Request) -> int | None:
    """``last`` as the id it must be (INVALID otherwise)."""
    last = cursor(request)
    if last is None:
        return None
    if not (last.isascii() and last.isdigit()) or len(last) > 12 or int(last) > parse.MAX_ID:
        raise invalid(f"last must be an id from the Link header, not {last[:40]!r}",
                      {"last": last[:40]})
    return int(last)


def _headers(request: web.Request, more: bool, key: str, n: int | None = None) -> Headers:
    if not more:
        return {}
    params = {k: v for k, v in request.query.items() if k not in ("n", "last", "limit")}
    page = size(request) if n is None else n
    return {"Link": next_link(request.path, {**params, "n": str(page), "last": key})}


def after_key(request: web.Request, items: Sequence[T],
              key: Callable[[T], str]) -> tuple[list[T], Headers]:
    """The page of ``items`` (in ascending ``key`` order) after the cursor."""
    last, n = cursor(request), size(request)
    rest = [item for item in items if last is None or key(item) > last]
    chosen = rest[:n]
    return chosen, _headers(request, len(rest) > n, key(chosen[-1]) if chosen else "")


def after_item(request: web.Request, items: Sequence[T],
               key: Callable[[T], str]) -> tuple[list[T], Headers]:
    """The page of ``items`` after the item whose key is the cursor."""
    last, n = cursor(request), size(request)
    start = 0
    if last is not None:
        keys = [key(item) for item in items]
        if last not in keys:
            raise invalid(f"{last[:80]!r} is no longer in this list; start again without last",
                          {"last": last[:80]})
        start = keys.index(last) + 1
    chosen = list(items[start:start + n])
    return chosen, _headers(request, len(items) > start + n, key(chosen[-1]) if chosen else "")


def fetched(request: web.Request, items: Sequence[T], key: Callable[[T], str], *,
            size: int | None = None) -> tuple[list[T], Headers]:
    """The page of ``items``, read by the store after the cursor with limit ``n + 1``
    (``size``: the page size, when not ``n``)."""
    n = _size(request) if size is None else size
    chosen = list(items[:n])
    return chosen, _headers(request, len(items) > n, key(chosen[-1]) if chosen else "", n)
