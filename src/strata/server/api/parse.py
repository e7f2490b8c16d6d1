"""Parsing /api/v1 request bodies and query parameters into values (INVALID otherwise)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from strata.release.model import invalid

MAX_BODY = 1 << 20


async def json_body(request: web.Request) -> dict[str, Any]:
    raw = await request.read() if request.can_read_body else b""
    if len(raw) > MAX_BODY:
        raise invalid("request body too large")
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise invalid("request body is not JSON") from None
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


def integer(data: Mapping[str, Any], key: str, default: int) -> int:
    value = data.get(key, default)
    if isinstance(value, str) and value.lstrip("-").isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise invalid(f"field {key!r} must be an integer")
    return value


def date(value: str | None) -> dt.date | None:
    if value is None:
        return None
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
