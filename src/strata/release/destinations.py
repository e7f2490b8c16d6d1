"""Where webhooks may be delivered, and how their URLs are shown.

A webhook URL is chosen by an administrator, but the server makes the request: without a rule
it would POST into the server's own network (loopback services, cloud metadata at
169.254.169.254, private addresses). So deliveries go only to *global* unicast addresses
unless the server allows private ones (``strata serve --webhook-allow-private``):

- at add time, a URL whose host is a literal address that is not global is refused;
- at delivery time the host name is resolved, **every** address is checked, and the
  connection goes to the checked addresses (:class:`GuardedResolver` is the connector's
  resolver, so no second lookup can rebind the name in between); a refusal is recorded as a
  failed delivery with the reason.

URLs are shown redacted (:func:`redact_url`): user and password become ``***@``, values of
query parameters that look like credentials become ``***``, and so do path segments that look
like tokens (16 or more characters mixing letters and digits: Slack- and Discord-style webhook
URLs carry their secret in the path).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

__all__ = ["DestinationRefused", "GuardedResolver", "check_address", "literal_host_refusal",
           "redact_url"]

ALLOW_FLAG = "--webhook-allow-private"
REDACTED = "***"
# Query parameter names (lower case, substrings) whose values are credentials.
_SECRET_PARAMS = ("token", "secret", "key", "pass", "pwd", "sig", "auth", "cred", "session")

_TOKEN_SEGMENT = re.compile(r"(?=[^/]*[A-Za-z])(?=[^/]*[0-9])[A-Za-z0-9_.~%-]{16,}")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class DestinationRefused(OSError):
    """A webhook host that is, or resolves to, an address deliveries may not go to."""


def _refusal(address: IPAddress) -> str | None:
    """Why ``address`` is no destination for a webhook, or None if it is a global one."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for attribute, what in (("is_loopback", "loopback"), ("is_link_local", "link-local"),
                            ("is_unspecified", "unspecified"), ("is_multicast", "multicast"),
                            ("is_reserved", "reserved"), ("is_private", "private")):
        if getattr(address, attribute):
            return what
    if not address.is_global:
        return "not global"
    return None


def check_address(text: str, host: str) -> None:
    """Raise :class:`DestinationRefused` unless the address ``text`` (of ``host``) is global."""
    address = ipaddress.ip_address(text.split("%", 1)[0])
    why = _refusal(address)
    if why is not None:
        shown = host if host == text else f"{host} ({text})"
        raise DestinationRefused(f"refused: {shown} is a {why} address; webhooks go to global "
                                 f"addresses unless strata serve {ALLOW_FLAG}")


def literal_host_refusal(url: str) -> str | None:
    """Why the literal address in ``url``'s host is refused, or None (a name, or global)."""
    host = urlsplit(url).hostname
    if not host:
        return None
    try:
        check_address(host, host)
    except DestinationRefused as exc:
        return str(exc)
    except ValueError:  # a name: checked when it is resolved, at delivery
        return None
    return None


class GuardedResolver(AbstractResolver):
    """The delivery connector's resolver: every address a name resolves to must be global."""

    def __init__(self, inner: AbstractResolver | None = None) -> None:
        self._inner = inner or DefaultResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            check_address(result["host"], host)
        return results

    async def close(self) -> None:
        await self._inner.close()


def redact_url(url: str) -> str:
    """``url`` with its user:password and credential-like query values replaced by ``***``."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return REDACTED
    netloc = parts.netloc
    if "@" in netloc:
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = f"{REDACTED}@{host}" + (f":{port}" if port is not None else "")
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_secret_name(name) for name, _ in pairs):
            query = urlencode([(name, REDACTED if _secret_name(name) else value)
                               for name, value in pairs], safe="*", quote_via=quote)
    path = "/".join(REDACTED if _TOKEN_SEGMENT.fullmatch(segment) else segment
                    for segment in parts.path.split("/"))
    return urlunsplit((parts.scheme, netloc, path, query, parts.fragment))


def _secret_name(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_PARAMS)
