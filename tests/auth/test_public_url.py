"""The token realm and every absolute URL come from the public URL, never from ``Host``
(``strata serve --public-url``; tests/server/test_account_generation.py runs the real command)."""

from __future__ import annotations

import asyncio

import pytest

from strata.server.urls import PublicUrl, next_link

from .conftest import IMAGE, EnvFactory
from .helpers import parse_challenge

EVIL = "evil.example"


async def _realm(make_env: EnvFactory, public_url: PublicUrl | None) -> tuple[str, int]:
    env = await make_env(public_url=public_url)
    resp = await env.client.get(f"/v2/{IMAGE}/blobs/uploads/x", headers={"Host": EVIL})
    await resp.read()
    assert resp.status == 401
    port = env.client.server.port
    assert port is not None
    return parse_challenge(resp.headers["WWW-Authenticate"])["realm"], port


async def test_the_realm_is_the_configured_public_url(make_env: EnvFactory) -> None:
    realm, _ = await _realm(make_env, PublicUrl.parse("https://registry.example:8443/"))
    assert realm == "https://registry.example:8443/auth/token"


async def test_without_a_public_url_the_realm_is_the_socket_not_the_host_header(
        make_env: EnvFactory) -> None:
    realm, port = await _realm(make_env, None)
    assert realm == f"http://127.0.0.1:{port}/auth/token"


async def _raw_challenge(port: int, host: str) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"POST /v2/{IMAGE}/blobs/uploads/ HTTP/1.1\r\nHost: {host}\r\n"
                 "X-Forwarded-Host: evil.example\r\nX-Forwarded-Proto: https\r\n"
                 "Forwarded: host=evil.example;proto=https\r\n"
                 "Content-Length: 0\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    data = await reader.read()
    writer.close()
    await writer.wait_closed()
    head = data.partition(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
    assert head[0].split()[1] == "401", head
    return next(line.split(": ", 1)[1] for line in head
                if line.lower().startswith("www-authenticate:"))


async def test_a_forged_host_header_on_the_wire_changes_nothing(make_env: EnvFactory) -> None:
    env = await make_env(public_url=PublicUrl.parse("http://registry.example"))
    port = env.client.server.port
    assert port is not None
    for host in (EVIL, "evil.example:443", "[::1]:1"):
        challenge = await _raw_challenge(port, host)
        assert parse_challenge(challenge)["realm"] == "http://registry.example/auth/token"


async def test_locations_and_links_carry_no_host(make_env: EnvFactory) -> None:
    env = await make_env(public_url=PublicUrl.parse("http://registry.example"))
    resp = await env.client.post(f"/v2/{IMAGE}/blobs/uploads/",
                                 headers={**env.creds("maint"), "Host": EVIL})
    assert resp.status == 202, await resp.text()
    assert resp.headers["Location"].startswith(f"/v2/{IMAGE}/blobs/uploads/")
    assert next_link("/v2/_catalog", {"n": 1, "last": "a/b"}) == \
        '</v2/_catalog?n=1&last=a%2Fb>; rel="next"'


@pytest.mark.parametrize(("text", "expected"), [
    ("http://registry.example", "http://registry.example"),
    ("https://registry.example:8443/", "https://registry.example:8443"),
    ("http://[::1]:5000", "http://[::1]:5000"),
    ("HTTP://Registry.Example", "http://registry.example"),
])
def test_public_url_parsing(text: str, expected: str) -> None:
    assert str(PublicUrl.parse(text)) == expected


@pytest.mark.parametrize("text", [
    "registry.example", "ftp://registry.example", "http://user:pw@registry.example",
    "http://registry.example/prefix", "http://registry.example/?q=1", "http://",
    "http://registry.example:99999", 'http://a"b',
])
def test_bad_public_urls_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        PublicUrl.parse(text)


def test_the_default_is_the_listen_address() -> None:
    assert str(PublicUrl.for_address("127.0.0.1", 5000, tls=False)) == "http://127.0.0.1:5000"
    assert str(PublicUrl.for_address("::1", 5000, tls=True)) == "https://[::1]:5000"
    assert PublicUrl.for_address("0.0.0.0", 5000, tls=False).is_wildcard
    assert PublicUrl.for_address("::", 5000, tls=False).is_wildcard
    assert PublicUrl.parse("http://0.0.0.0").is_wildcard
    assert PublicUrl.parse("http://[::]:80").is_wildcard
    assert not PublicUrl.parse("http://registry.example:80").is_wildcard
    assert not PublicUrl.parse("http://[::1]").is_wildcard
