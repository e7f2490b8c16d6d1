"""The server's URLs: absolute ones from the configured public URL, never from ``Host``.

``strata serve --public-url URL`` (default: the listen address, ``https`` with TLS) is where
clients reach the registry. Every absolute URL the server hands out — the token ``realm`` of
``WWW-Authenticate`` first of all — is built from it by :func:`absolute_url`; the request's
``Host`` (or ``X-Forwarded-*``) headers are never used, so a forged ``Host`` cannot send clients'
passwords elsewhere through a proxy cache or a crafted link.

``Location`` and ``Link`` headers are *relative* references (``/v2/…``), which the
distribution spec allows and every client resolves against the URL it used: they carry no host
at all, and an upload can continue on any node behind a load balancer. ``Link`` values are
built by :func:`next_link` (tags, catalog, referrers), so that, should they ever have to become
absolute, there is one place to change.

An app built without a public URL (the in-process tests) falls back to the address of the socket
the request arrived on, again never to ``Host``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from aiohttp import web

__all__ = ["PUBLIC_URL", "PublicUrl", "absolute_url", "next_link", "public_url"]


@dataclass(frozen=True)
class PublicUrl:
    """``scheme://host[:port]``: where clients reach this server (no path, query or user)."""

    scheme: str
    netloc: str

    @classmethod
    def parse(cls, text: str) -> PublicUrl:
        """``http(s)://host[:port][/]``; ``ValueError`` with the reason otherwise."""
        try:
            parts = urlsplit(text.strip())
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"not a URL: {text[:200]!r} ({exc})") from None
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"public URL must start with http:// or https://, not {text[:200]!r}")
        if not parts.hostname:
            raise ValueError(f"public URL has no host: {text[:200]!r}")
        if parts.username is not None or parts.password is not None:
            raise ValueError("public URL must not carry credentials")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError("public URL is scheme://host[:port] only (/v2/ lives at the root)")
        if not parts.netloc.isascii() or any(c in parts.netloc for c in ' "\\<>'):
            raise ValueError("public URL host must be plain ASCII")
        host = parts.hostname
        netloc = f"[{host}]" if ":" in host else host
        if port is not None:
            netloc += f":{port}"
        return cls(parts.scheme, netloc)

    @classmethod
    def for_address(cls, host: str, port: int, *, tls: bool) -> PublicUrl:
        """The default: the listen address (``[v6]`` bracketed), ``https`` when TLS is on."""
        with_brackets = f"[{host}]" if ":" in host else host
        return cls("https" if tls else "http", f"{with_brackets}:{port}")

    @property
    def is_wildcard(self) -> bool:
        """True for ``0.0.0.0``/``::``: a listen address no client can use as a URL."""
        host = urlsplit(str(self)).hostname or ""
        try:
            return ipaddress.ip_address(host).is_unspecified
        except ValueError:
            return False

    def url(self, path: str) -> str:
        """The absolute URL of *path* (which starts with ``/``)."""
        if not path.startswith("/"):
            raise ValueError("path must start with /")
        return f"{self.scheme}://{self.netloc}{path}"

    def __str__(self) -> str:
        return f"{self.scheme}://{self.netloc}"


PUBLIC_URL = web.AppKey("strata.public_url", PublicUrl)


def _socket_url(request: web.Request) -> PublicUrl:
    """Where this request arrived (the socket, not ``Host``): the fallback without config."""
    transport = request.transport
    sockname = transport.get_extra_info("sockname") if transport is not None else None
    tls = transport is not None and transport.get_extra_info("sslcontext") is not None
    if isinstance(sockname, tuple) and len(sockname) >= 2:
        return PublicUrl.for_address(str(sockname[0]), int(sockname[1]), tls=tls)
    return PublicUrl("https" if tls else "http", "localhost")


def public_url(request: web.Request) -> PublicUrl:
    """The configured public URL of the app serving *request* (or the socket's address)."""
    configured = request.app.get(PUBLIC_URL)
    return configured if configured is not None else _socket_url(request)


def absolute_url(request: web.Request, path: str) -> str:
    """The absolute URL of *path* on this server, from the public URL (never ``Host``)."""
    return public_url(request).url(path)


def next_link(path: str, params: Mapping[str, str | int]) -> str:
    """A ``Link`` value for the next page: ``<path?params>; rel="next"`` (relative)."""
    return f'<{path}?{urlencode(dict(params))}>; rel="next"'
