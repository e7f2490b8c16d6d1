"""rpmvercmp: rpm's own test table, extra cases, and properties against a reference model."""

from __future__ import annotations

import functools
import itertools
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from strata.release.rpmvercmp import evr_compare, rpmvercmp

# From rpm's tests/rpmvercmp.at (a, b, expected); every case also runs swapped.
RPM_TABLE = [
    ("1.0", "1.0", 0),
    ("1.0", "2.0", -1),
    ("2.0.1", "2.0.1", 0),
    ("2.0", "2.0.1", -1),
    ("2.0.1a", "2.0.1a", 0),
    ("2.0.1a", "2.0.1", 1),
    ("5.5p1", "5.5p1", 0),
    ("5.5p1", "5.5p2", -1),
    ("5.5p10", "5.5p10", 0),
    ("5.5p1", "5.5p10", -1),
    ("10xyz", "10.1xyz", -1),
    ("xyz10", "xyz10", 0),
    ("xyz10", "xyz10.1", -1),
    ("xyz.4", "xyz.4", 0),
    ("xyz.4", "8", -1),
    ("xyz.4", "2", -1),
    ("5.5p2", "5.6p1", -1),
    ("5.6p1", "6.5p1", -1),
    ("6.0.rc1", "6.0", 1),
    ("10b2", "10a1", 1),
    ("10a2", "10b2", -1),
    ("1.0aa", "1.0aa", 0),
    ("1.0a", "1.0aa", -1),
    ("10.0001", "10.0001", 0),
    ("10.0001", "10.1", 0),
    ("10.0001", "10.0039", -1),
    ("4.999.9", "5.0", -1),
    ("20101121", "20101121", 0),
    ("20101121", "20101122", -1),
    ("2_0", "2_0", 0),
    ("2.0", "2_0", 0),
    # RhBug:178798: separators are all equal
    ("a", "a", 0),
    ("a+", "a+", 0),
    ("a+", "a_", 0),
    ("+a", "+a", 0),
    ("+a", "_a", 0),
    ("+_", "+_", 0),
    ("_+", "+_", 0),
    ("+", "_", 0),
    # tilde
    ("1.0~rc1", "1.0~rc1", 0),
    ("1.0~rc1", "1.0", -1),
    ("1.0~rc1", "1.0~rc2", -1),
    ("1.0~rc1~git123", "1.0~rc1~git123", 0),
    ("1.0~rc1~git123", "1.0~rc1", -1),
    # caret
    ("1.0^", "1.0^", 0),
    ("1.0^", "1.0", 1),
    ("1.0^git1", "1.0^git1", 0),
    ("1.0^git1", "1.0", 1),
    ("1.0^git1", "1.0^git2", -1),
    ("1.0^git1", "1.01", -1),
    ("1.0^20160101", "1.0^20160101", 0),
    ("1.0^20160101", "1.0.1", -1),
    ("1.0^20160101^git1", "1.0^20160101^git1", 0),
    ("1.0^20160102", "1.0^20160101^git1", 1),
    # tilde and caret
    ("1.0~rc1^git1", "1.0~rc1^git1", 0),
    ("1.0~rc1^git1", "1.0~rc1", 1),
    ("1.0^git1~pre", "1.0^git1~pre", 0),
    ("1.0^git1", "1.0^git1~pre", 1),
    # "oddities" rpm documents as current behaviour (RhBug:811992, non-ASCII)
    ("1b.fc17", "1b.fc17", 0),
    ("1b.fc17", "1.fc17", -1),
    ("1g.fc17", "1g.fc17", 0),
    ("1g.fc17", "1.fc17", 1),
    ("1.1.\u03b1", "1.1.\u03b1", 0),
    ("1.1.\u03b1", "1.1.\u03b2", 0),
    ("1.1.\u03b1\u03b1", "1.1.\u03b1", 0),
    ("1.1.\u03b1", "1.1.\u03b2\u03b2", 0),
]

EXTRA_TABLE = [
    ("1.10", "1.9", 1),
    ("1.0^git1", "1.1", -1),
    ("130", "129", 1),
    ("2.f25docker", "1.f25docker", 1),
    ("1.0.", "1.0", 0),  # a trailing separator is not a segment
    ("1a", "1.a", 0),
    ("1.0", "1.a", 1),  # numeric beats alpha
    ("Z", "a", -1),  # alpha compares as bytes: upper case first
    ("1.0~", "1.0", -1),
    ("1.0~", "1.0~~", 1),
    ("1.0~rc1", "1.0^", -1),
    ("1.0^", "1.0.0", -1),
    ("", "", 0),
    ("", "0", -1),
    ("", "~", 1),
    ("", "^", -1),
    ("00", "0", 0),
    ("9" * 5000, "1" + "0" * 5000, -1),  # no int conversion limit
    ("0" * 50 + "7", "7", 0),
]


@pytest.mark.parametrize(("a", "b", "expected"), RPM_TABLE + EXTRA_TABLE)
def test_known_results(a: str, b: str, expected: int) -> None:
    assert rpmvercmp(a, b) == expected
    assert rpmvercmp(b, a) == -expected


@pytest.mark.parametrize(
    ("v1", "r1", "v2", "r2", "expected"),
    [
        ("130", "2.f25docker", "130", "1.f25docker", 1),
        ("130", "1.f25docker", "130", "1.f25docker", 0),
        ("129", "9", "130", "1", -1),  # version decides before release
        ("1.10", "1", "1.9", "99", 1),
        ("1.0", "1~rc1", "1.0", "1", -1),
        ("1.0", "1", "1.00", "01", 0),
    ],
)
def test_evr_compare(v1: str, r1: str, v2: str, r2: str, expected: int) -> None:
    assert evr_compare(v1, r1, v2, r2) == expected
    assert evr_compare(v2, r2, v1, r1) == -expected


# --- an independent reference model: tokenise, then compare padded token sequences ---------

_TOKEN = re.compile(r"[0-9]+|[A-Za-z]+|~|\^")
_END = (1,)


def _token_rank(token: str) -> tuple[int, ...] | tuple[int, int, str]:
    if token == "~":
        return (0,)
    if token == "^":
        return (2,)
    if token[0].isdigit():
        digits = token.lstrip("0")
        return (4, len(digits), digits)
    return (3, 0, token)


def reference_cmp(a: str, b: str) -> int:
    ta = [_token_rank(t) for t in _TOKEN.findall(a)]
    tb = [_token_rank(t) for t in _TOKEN.findall(b)]
    for x, y in itertools.zip_longest(ta, tb, fillvalue=_END):
        if x != y:
            return -1 if x < y else 1
    return 0


versions = st.text(alphabet="0129azAZ.~^_+-é", max_size=10)


@given(versions, versions)
def test_matches_reference_model(a: str, b: str) -> None:
    assert rpmvercmp(a, b) == reference_cmp(a, b)


@given(versions)
def test_reflexive(a: str) -> None:
    assert rpmvercmp(a, a) == 0


@given(versions, versions)
def test_antisymmetric(a: str, b: str) -> None:
    assert rpmvercmp(a, b) == -rpmvercmp(b, a)
    assert rpmvercmp(a, b) in (-1, 0, 1)


@given(versions, versions, versions)
def test_transitive(a: str, b: str, c: str) -> None:
    ab, bc, ac = rpmvercmp(a, b), rpmvercmp(b, c), rpmvercmp(a, c)
    if ab <= 0 and bc <= 0:
        assert ac <= 0
    if ab == 0 and bc == 0:
        assert ac == 0
    if ab < 0 and bc <= 0:
        assert ac < 0


@given(st.lists(versions, max_size=12))
def test_sorting_is_consistent(items: list[str]) -> None:
    ordered = sorted(items, key=functools.cmp_to_key(rpmvercmp))
    for i, j in itertools.combinations(range(len(ordered)), 2):
        assert rpmvercmp(ordered[i], ordered[j]) <= 0


@given(versions, versions)
def test_separators_are_interchangeable(a: str, b: str) -> None:
    assert rpmvercmp(a.replace(".", "_"), b.replace("+", ".")) == rpmvercmp(a, b)
