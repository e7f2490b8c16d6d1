"""Parsing /api/v1 request bodies and query parameters into values (INVALID otherwise)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from strata.release.model import invalid
from strata.server.http import read_limited

MAX_BODY = 1 << 20
#: Deepest nesting of arrays and objects a request body may have (the API's bodies are flat:
#: an object of strings and lists of strings).
MAX_DEPTH = 16
#: Longest integer accepted, in characters (the API's integers are small counts and days).
MAX_INTEGER_DIGITS = 12


def _depth(value: Any) -> int:
    """How deeply *value* nests (a scalar is 0); iterative, so no recursion limit applies."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            level += 1
            deepest = max(deepest, level)
            if deepest > MAX_DEPTH:
                return deepest
            stack.extend((child, level) for child in item)
    return deepest


def _parse_int(text: str) -> int:
    if len(text) > MAX_INTEGER_DIGITS:
        raise ValueError("integer too long")
    return int(text)


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object: at most ``MAX_BODY`` bytes (413 SIZE_INVALID), nested at
    most ``MAX_DEPTH`` deep, integers of at most ``MAX_INTEGER_DIGITS`` digits (400 INVALID).
    Handlers call it only after :func:`~strata.server.api.auth.authorize`."""
    raw = await read_limited(request, MAX_BODY) if request.can_read_body else b""
    if not raw:
        return {}
    try:
        data = json.loads(raw, parse_int=_parse_int)
    except RecursionError:
        raise invalid(f"request body nests deeper than {MAX_DEPTH} levels") from None
    except (UnicodeDecodeError, ValueError):  # JSONDecodeError, and integers too long
        raise invalid("request body is not JSON (or has an integer over "
                      f"{MAX_INTEGER_DIGITS} digits)") from None
    if _depth(data) > MAX_DEPTH:
        raise invalid(f"request body nests deeper than {MAX_DEPTH} levels")
    if not isinstance(data, dict):
        raise invalid("request body must be a JSON object")
    return data


def text(data: dict[str, Any], key: str, *, required: bool = False) -> str | None:
    value = data.get(key)
    if value is None or value == "":
        if required:
            raise invalid(f"missing field {key!r}")
        return None
    if not isinstance(value, str):
        raise invalid(f"field {key!r} must be a string")
    return value


def required(data: dict[str, Any], key: str) -> str:
    value = text(data, key, required=True)
    assert value is not None
    return value


def strings(data: dict[str, Any], key: str) -> list[str]:
    value = data.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise invalid(f"field {key!r} must be a list of strings")
    return value


def integer(data: Mapping[str, Any], key: str, default: int, *,
            low: int | None = None, high: int | None = None) -> int:
    """An integer field or query parameter (a JSON number or decimal digits), within
    ``low..high`` when given; INVALID otherwise (never an unbounded ``int()``)."""
    value = data.get(key, default)
    if isinstance(value, str):
        digits = value[1:] if value.startswith("-") else value
        if not (digits.isascii() and digits.isdigit()) or len(digits) > MAX_INTEGER_DIGITS:
            raise invalid(f"field {key!r} must be an integer", {key: value[:40]})
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise invalid(f"field {key!r} must be an integer")
    if (low is not None and value < low) or (high is not None and value > high):
        raise invalid(f"field {key!r} must be {low} to {high}", {key: value})
    return value


def date(value: str | None) -> dt.date | None:
    if value is None:
        return None
    if len(value) > 10:
        raise invalid(f"{value[:40]!r} is not a date (YYYY-MM-DD)")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise invalid(f"{value!r} is not a date (YYYY-MM-DD)") from None


def timestamp(value: str | None) -> float | None:
    """Unix seconds, or an ISO 8601 date or time (UTC unless it says otherwise)."""
    if value is None or value == "":
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise invalid(f"{value!r} is not a time (ISO 8601 or Unix seconds)") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()
