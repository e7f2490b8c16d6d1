"""The pages' Jinja2 environment: autoescaping templates, filters for dates, sizes, digests and
links. Dates are shown in UTC with a relative time computed on the server (no JavaScript)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any

from strata.catalog.views import image_path
from strata.lazyimports import LazyModule

if TYPE_CHECKING:
    import jinja2
else:
    jinja2 = LazyModule("jinja2")  # imported by the first page rendered (issue #18)

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"

RESERVED: frozenset[str] = frozenset({
    "v1", "v2", "api", "auth", "healthz", "metrics", "search", "keys", "static",
    "favicon.ico", "robots.txt", "-", "_"})
"""First path segments the server's other routes take: a namespace of that name has its images'
pages under ``/-/images/``, and ``/<segment>/...`` is never an image page."""


def utc(at: float | None) -> str:
    if at is None:
        return ""
    return dt.datetime.fromtimestamp(at, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def iso(at: float | None) -> str:
    if at is None:
        return ""
    return dt.datetime.fromtimestamp(at, dt.UTC).isoformat(timespec="seconds").replace(
        "+00:00", "Z")


def ago(at: float | None, now: float) -> str:
    """``3 days ago`` / ``in 2 hours`` / ``just now``."""
    if at is None:
        return ""
    delta = now - at
    future = delta < 0
    seconds = abs(delta)
    for unit, size in (("year", 365 * 86400), ("month", 30 * 86400), ("day", 86400),
                       ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = int(seconds // size)
            text = f"{n} {unit}{'' if n == 1 else 's'}"
            return f"in {text}" if future else f"{text} ago"
    return "just now"


def size(n: int | None) -> str:
    if n is None:
        return ""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def short(digest: str | None) -> str:
    if not digest:
        return ""
    algo, _, hexpart = digest.partition(":")
    return f"{algo}:{hexpart[:12]}" if hexpart else digest[:19]


def image_url(repository: str) -> str:
    return image_path(repository, RESERVED)


def namespace_url(name: str) -> str:
    return f"/-/namespaces/{name}" if name in RESERVED else f"/{name}"


def environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES),
                             autoescape=jinja2.select_autoescape(["html"], default=True),
                             trim_blocks=True,
                             lstrip_blocks=True, enable_async=False)
    env.filters.update(utc=utc, iso=iso, size=size, short=short, image_url=image_url,
                       namespace_url=namespace_url)
    env.globals.update(ago=ago)
    return env


def render(env: jinja2.Environment, template: str, **context: Any) -> str:
    return env.get_template(template).render(**context)
