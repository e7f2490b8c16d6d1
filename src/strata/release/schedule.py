"""The release schedule of a namespace (pure: dates in, dates out).

Scheduled releases fall on ``anchor + k * interval_days`` for ``k >= 0``; a date is due from
00:00 UTC of that day. Each scheduled release is named ``<namespace>-<YYYY-MM-DD>``.

"The next release" of a namespace, given the date of its last published scheduled release
(``last``, None if there is none) and today:

* if one or more schedule dates after ``last`` have already come (``<= today``), the next
  release is the **latest** of them: it is overdue, and publishing it covers everything the
  missed dates would have (a server that was down for a month publishes once, not twice);
* otherwise it is the first schedule date after ``last`` that is still to come.

Publishing a release on date ``D`` makes ``D`` the new ``last``, so publishing the next
release before its date moves "next" on to the following date.
"""

from __future__ import annotations

import datetime as dt
import re

__all__ = ["FIRST_ANCHOR", "LAST_ANCHOR", "MAX_INTERVAL_DAYS", "check_anchor", "due_date",
           "is_on_schedule", "next_date", "parse_scheduled_name",
           "scheduled_name", "upcoming"]

_NAME = re.compile(r"^(?P<ns>.+)-(?P<date>\d{4}-\d{2}-\d{2})$")


#: The anchors a namespace may have: a schedule must have room for its dates (``upcoming``
#: lists up to 100 of them, every ``MAX_INTERVAL_DAYS`` at most) before ``date.max``.
FIRST_ANCHOR = dt.date(1970, 1, 1)
LAST_ANCHOR = dt.date(2999, 12, 31)
MAX_INTERVAL_DAYS = 3650


def check_anchor(anchor: dt.date) -> None:
    """``ValueError`` unless ``FIRST_ANCHOR <= anchor <= LAST_ANCHOR``."""
    if not FIRST_ANCHOR <= anchor <= LAST_ANCHOR:
        raise ValueError(f"anchor must be between {FIRST_ANCHOR} and {LAST_ANCHOR}, "
                         f"not {anchor}")


def _check(interval_days: int) -> None:
    if interval_days < 1:
        raise ValueError(f"interval must be at least one day, not {interval_days}")


def _first_after(anchor: dt.date, interval_days: int, after: dt.date | None) -> dt.date:
    """The first schedule date strictly after ``after`` (the anchor if ``after`` is None)."""
    if after is None or after < anchor:
        return anchor
    steps = (after - anchor).days // interval_days + 1
    return anchor + dt.timedelta(days=steps * interval_days)


def _last_on_or_before(anchor: dt.date, interval_days: int, day: dt.date) -> dt.date | None:
    if day < anchor:
        return None
    steps = (day - anchor).days // interval_days
    return anchor + dt.timedelta(days=steps * interval_days)


def is_on_schedule(anchor: dt.date, interval_days: int, day: dt.date) -> bool:
    _check(interval_days)
    return day >= anchor and (day - anchor).days % interval_days == 0


def due_date(anchor: dt.date, interval_days: int, last: dt.date | None,
             today: dt.date) -> dt.date | None:
    """The schedule date to publish now, or None if no date after ``last`` has come yet."""
    _check(interval_days)
    latest = _last_on_or_before(anchor, interval_days, today)
    if latest is None or (last is not None and latest <= last):
        return None
    return latest


def next_date(anchor: dt.date, interval_days: int, last: dt.date | None,
              today: dt.date) -> dt.date:
    """The next scheduled release: the overdue one if any, else the first one to come."""
    due = due_date(anchor, interval_days, last, today)
    if due is not None:
        return due
    after = today if last is None or last < today else last
    return _first_after(anchor, interval_days, after)


def upcoming(anchor: dt.date, interval_days: int, last: dt.date | None, today: dt.date,
             count: int) -> list[dt.date]:
    """The next ``count`` scheduled dates, starting with :func:`next_date`."""
    if count <= 0:
        return []
    dates = [next_date(anchor, interval_days, last, today)]
    while len(dates) < count:
        try:
            dates.append(dates[-1] + dt.timedelta(days=interval_days))
        except OverflowError:  # past 9999-12-31: there is no later date to list
            break
    return dates


def scheduled_name(namespace: str, day: dt.date) -> str:
    return f"{namespace}-{day.isoformat()}"


def parse_scheduled_name(name: str) -> tuple[str, dt.date] | None:
    """``("f25", date(2025, 6, 10))`` for ``f25-2025-06-10``; None if it is not such a name."""
    m = _NAME.match(name)
    if m is None:
        return None
    try:
        day = dt.date.fromisoformat(m.group("date"))
    except ValueError:
        return None
    return m.group("ns"), day
