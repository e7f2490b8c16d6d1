"""Webhook outbox: backoff schedule, giving up, and one sender per delivery."""

from __future__ import annotations

import socket

import pytest
import sqlalchemy as sa

from strata.errors import Code
from strata.release.engine import ReleaseEngine
from strata.release.errors import ReleaseError
from strata.release.webhooks import RetryPolicy
from support.release import webhook_sender

from .conftest import Clock


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_backoff_doubles_up_to_the_cap() -> None:
    policy = RetryPolicy(base_delay=2, max_delay=10)
    assert [policy.delay(n) for n in (1, 2, 3, 4, 5)] == [2, 4, 8, 10, 10]


async def test_failed_deliveries_are_retried_then_given_up(
        engine: ReleaseEngine, db: sa.Engine, clock: Clock) -> None:
    await engine.add_webhook(f"http://127.0.0.1:{closed_port()}/hook")
    await engine.inventory.add_namespace("f25", "f25docker")
    await engine.inventory.add_image("f25/x")
    await engine.eol("f25/x:1", actor="releng")
    sender = webhook_sender(db, policy=RetryPolicy(base_delay=30, max_attempts=3, timeout=2),
                           clock=clock, security=engine.webhook_security)
    assert await sender.deliver_due() == 0
    [item] = [d.to_json() for d in await engine.deliveries()]
    assert (item["status"], item["attempts"]) == ("pending", 1)
    assert "ClientConnectorError" in item["last_error"]
    assert await sender.deliver_due() == 0  # not due again yet
    assert (await engine.deliveries())[0].attempts == 1
    clock.advance(seconds=31)
    await sender.deliver_due()
    assert (await engine.deliveries())[0].attempts == 2
    clock.advance(seconds=61)
    await sender.deliver_due()
    [item] = [d.to_json() for d in await engine.deliveries()]
    assert (item["status"], item["attempts"]) == ("failed", 3)
    clock.advance(days=1)
    assert await sender.deliver_due() == 0
    assert (await engine.deliveries())[0].attempts == 3


async def test_a_claimed_delivery_is_not_sent_twice(engine: ReleaseEngine, db: sa.Engine,
                                                    clock: Clock) -> None:
    await engine.add_webhook("http://127.0.0.1:9/hook", events=["stream.eol"])
    await engine.inventory.add_namespace("f25", "f25docker")
    await engine.inventory.add_image("f25/x")
    await engine.eol("f25/x:1", actor="releng")
    first = webhook_sender(db, clock=clock)
    second = webhook_sender(db, clock=clock)
    assert len(await first.claim(10)) == 1
    assert await second.claim(10) == []
    clock.advance(seconds=61)  # the first sender died: its claim expires
    assert len(await second.claim(10)) == 1


async def test_webhook_validation(engine: ReleaseEngine) -> None:
    for url, events in (("file:///etc/passwd", []), ("http://x", ["release.nope"])):
        with pytest.raises(ReleaseError) as err:
            await engine.add_webhook(url, events=events)
        assert err.value.code is Code.INVALID
