"""Parsing /api/v1 request bodies and query parameters into values (INVALID otherwise)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any, cast

from aiohttp import web
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from strata.release.errors import ReleaseError
from strata.release.model import invalid
from strata.server.http import read_limited

MAX_BODY = 1 << 20
#: Deepest nesting of arrays and objects a request body may have (the API's bodies are flat:
#: an object of strings and lists of strings).
MAX_DEPTH = 16
#: Longest integer accepted, in characters (the API's integers are small counts and days).
MAX_INTEGER_DIGITS = 12

#: The largest id of a row (``sa.Integer`` keys are 32-bit on PostgreSQL: a larger one in a
#: query was a 500 there); an id beyond it names nothing.
MAX_ID = 2**31 - 1

#: The checked query values of the request's declared parameters (:mod:`.spec`).
QUERY = web.RequestKey("api_query", dict[str, Any])
#: The validator of the request's declared body (absent: the route declares none).
BODY_SCHEMA = web.RequestKey("api_body_schema", Draft202012Validator)


def query(request: web.Request, name: str) -> Any:
    """The checked value of a declared query parameter (its default when absent)."""
    return request[QUERY][name]


def check_text(text: str, what: str) -> None:
    """Refuse text no field may hold: a NUL character (PostgreSQL cannot store it; 400
    INVALID, never the database's error as a 500)."""
    if "\x00" in text:
        raise invalid(f"{what} contains a NUL character")


def _depth(value: Any) -> int:
    """How deeply *value* nests (a scalar is 0); iterative, so no recursion limit applies.
    Every string in it, keys too, is checked with :func:`check_text`."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, str):
            check_text(item, "a string in the request body")
        if isinstance(item, dict):
            for key in item:
                check_text(str(key), "a field name in the request body")
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
    most ``MAX_DEPTH`` deep, integers of at most ``MAX_INTEGER_DIGITS`` digits, valid against
    the route's declared body schema (:mod:`.spec`) (400 INVALID naming the field).
    Handlers call it only after :func:`~strata.server.api.auth.authorize`."""
    raw = await read_limited(request, MAX_BODY) if request.can_read_body else b""
    data = _decode(raw) if raw else {}
    validator = request.get(BODY_SCHEMA)
    if validator is not None:
        error = best_match(validator.iter_errors(data))
        if error is not None:
            raise _refusal(error)
    return data


def _refusal(error: ValidationError) -> ReleaseError:
    """INVALID naming the field of a body that fails its schema."""
    where = ".".join(str(p) for p in error.absolute_path)
    if error.validator == "required" and isinstance(error.instance, dict):
        wanted: list[str] = list(cast(Any, error.validator_value))
        missing = [k for k in wanted if k not in error.instance]
        field = ".".join(x for x in (where, str(missing[0] if missing else "")) if x)
        return invalid(f"missing field {field!r}", {"field": field})
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = set(cast(dict[str, Any], error.schema).get("properties", {}))
        extra = sorted(str(k) for k in error.instance if k not in known)
        return invalid(f"unknown field(s) {extra[:10]} (known: {sorted(known)})",
                       {"field": where, "unknown": extra[:10]})
    return invalid(f"field {where!r}: {error.message[:200]}" if where else
                   f"request body: {error.message[:200]}", {"field": where})


def _decode(raw: bytes) -> dict[str, Any]:
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
