"""The release schedule: dates every N days from an anchor, due and next dates."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from strata.release.schedule import (
    due_date,
    is_on_schedule,
    next_date,
    parse_scheduled_name,
    scheduled_name,
    upcoming,
)

A = dt.date(2025, 6, 10)
D = dt.timedelta


def test_before_the_anchor_the_anchor_is_next_and_nothing_is_due() -> None:
    today = A - D(days=3)
    assert next_date(A, 14, None, today) == A
    assert due_date(A, 14, None, today) is None
    assert upcoming(A, 14, None, today, 3) == [A, A + D(days=14), A + D(days=28)]


def test_a_date_is_due_from_its_day() -> None:
    assert due_date(A, 14, None, A) == A
    assert next_date(A, 14, None, A) == A
    assert due_date(A, 14, A, A) is None
    assert next_date(A, 14, A, A) == A + D(days=14)


def test_missed_dates_collapse_into_the_latest() -> None:
    today = A + D(days=50)
    assert due_date(A, 14, None, today) == A + D(days=42)
    assert due_date(A, 14, A, today) == A + D(days=42)


def test_publishing_early_moves_next_on() -> None:
    early = A - D(days=5)
    assert next_date(A, 14, A, early) == A + D(days=14)
    assert due_date(A, 14, A, early) is None


def test_names() -> None:
    assert scheduled_name("f25", A) == "f25-2025-06-10"
    assert parse_scheduled_name("f25-2025-06-10") == ("f25", A)
    assert parse_scheduled_name("f-25-2025-06-10") == ("f-25", A)
    assert parse_scheduled_name("f25-security-1") is None
    assert parse_scheduled_name("f25-2025-13-40") is None


def test_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least one day"):
        next_date(A, 0, None, A)


dates = st.dates(min_value=dt.date(2020, 1, 1), max_value=dt.date(2030, 1, 1))


@given(anchor=dates, interval=st.integers(1, 60), today=dates,
       last_steps=st.one_of(st.none(), st.integers(0, 200)))
def test_next_date_properties(anchor: dt.date, interval: int, today: dt.date,
                              last_steps: int | None) -> None:
    last = None if last_steps is None else anchor + D(days=last_steps * interval)
    nxt = next_date(anchor, interval, last, today)
    assert is_on_schedule(anchor, interval, nxt)
    assert last is None or nxt > last
    due = due_date(anchor, interval, last, today)
    if due is not None:
        assert nxt == due <= today < due + D(days=interval)
    else:
        # the first date to come: nothing on the schedule between it and max(today, last)
        assert nxt > today or (last is not None and nxt > last)
        assert nxt == anchor or nxt - D(days=interval) <= max(today, last or today)
