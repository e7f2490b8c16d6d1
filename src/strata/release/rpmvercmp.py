"""RPM version comparison, with the exact semantics of rpm's ``lib/rpmvercmp.c``.

A version (or release) string is read as a sequence of *segments*:

* a maximal run of ASCII digits (a numeric segment),
* a maximal run of ASCII letters (an alpha segment),
* a ``~`` or a ``^``.

Every other character (``.``, ``_``, ``+``, any non-ASCII character, ...) is a separator and is
ignored, except that it ends the segment before it: ``2.0`` and ``2_0`` compare equal, and so do
``1a`` and ``1.a``.

Two strings are compared segment by segment, from the left:

* ``~`` sorts before everything, including the end of the string: ``1.0~rc1 < 1.0``;
* ``^`` sorts after the end of the string but before any other segment:
  ``1.0 < 1.0^git1 < 1.0.1``;
* a numeric segment beats an alpha segment: ``1.0 > 1.a``;
* numeric segments compare as integers (leading zeros dropped; no size limit): ``1.10 > 1.9``,
  ``10.0001 == 10.1``;
* alpha segments compare as byte strings (ASCII, case sensitive: ``Z < a``);
* when all segments compared equal, the string with segments left over is newer:
  ``2.0.1 > 2.0``, while ``1.0.`` equals ``1.0`` (a trailing separator is not a segment).

The result is a total preorder: antisymmetric, transitive, but strings such as ``2.0`` and
``2_0`` are *equivalent* without being equal.
"""

from __future__ import annotations

__all__ = ["evr_compare", "rpmvercmp"]


def _is_digit(ch: str) -> bool:
    return "0" <= ch <= "9"


def _is_alpha(ch: str) -> bool:
    return "a" <= ch <= "z" or "A" <= ch <= "Z"


def _is_separator(ch: str) -> bool:
    # rpm's risalnum() is ASCII only: every non-ASCII character is a separator.
    return not (_is_digit(ch) or _is_alpha(ch) or ch == "~" or ch == "^")


def rpmvercmp(a: str, b: str) -> int:
    """Compare two version (or release) strings the way rpm does.

    Returns ``1`` if ``a`` is newer, ``0`` if they are equivalent, ``-1`` if ``b`` is newer.
    """
    if a == b:
        return 0
    i, j = 0, 0
    len_a, len_b = len(a), len(b)
    while i < len_a or j < len_b:
        while i < len_a and _is_separator(a[i]):
            i += 1
        while j < len_b and _is_separator(b[j]):
            j += 1
        ch_a = a[i] if i < len_a else ""
        ch_b = b[j] if j < len_b else ""

        # Tilde sorts before everything else, even the end of the string.
        if ch_a == "~" or ch_b == "~":
            if ch_a != "~":
                return 1
            if ch_b != "~":
                return -1
            i += 1
            j += 1
            continue

        # Caret sorts after the end of the string but before any other segment.
        if ch_a == "^" or ch_b == "^":
            if not ch_a:
                return -1
            if not ch_b:
                return 1
            if ch_a != "^":
                return 1
            if ch_b != "^":
                return -1
            i += 1
            j += 1
            continue

        # One of them ran out: decided below by which one has segments left.
        if not (ch_a and ch_b):
            break

        is_num = _is_digit(ch_a)
        in_segment = _is_digit if is_num else _is_alpha
        end_a, end_b = i, j
        while end_a < len_a and in_segment(a[end_a]):
            end_a += 1
        while end_b < len_b and in_segment(b[end_b]):
            end_b += 1
        seg_a, seg_b = a[i:end_a], b[j:end_b]

        # Segments of different types: numeric is newer than alpha.
        if not seg_b:
            return 1 if is_num else -1

        if is_num:
            seg_a = seg_a.lstrip("0")
            seg_b = seg_b.lstrip("0")
            # Without leading zeros, the number with more digits is the bigger one.
            if len(seg_a) != len(seg_b):
                return 1 if len(seg_a) > len(seg_b) else -1
        if seg_a != seg_b:
            return 1 if seg_a > seg_b else -1
        i, j = end_a, end_b

    if i >= len_a and j >= len_b:
        return 0
    return -1 if i >= len_a else 1


def evr_compare(v1: str, r1: str, v2: str, r2: str) -> int:
    """Compare ``v1-r1`` with ``v2-r2``: by version first, then by release (no epoch).

    Returns ``1`` if the first is newer, ``0`` if equivalent, ``-1`` if the second is newer.
    """
    result = rpmvercmp(v1, v2)
    if result != 0:
        return result
    return rpmvercmp(r1, r2)
