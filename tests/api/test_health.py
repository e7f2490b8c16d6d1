"""``GET /healthz``: 200 while the metadata store answers, 503 with a reason when it does not."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy.exc

from strata.server.handlers import health
from strata.server.keys import REGISTRY

from .helpers import Client


async def test_a_working_registry_is_healthy(client: Client) -> None:
    resp = await client.get("/healthz")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok"}
    assert resp.headers["Cache-Control"] == "no-store"


async def test_a_failing_metadata_store_makes_it_unavailable(
        client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(n: int | None, last: str | None) -> list[str]:
        raise sqlalchemy.exc.OperationalError("SELECT", {}, Exception("disk I/O error"))

    meta = client.app[REGISTRY].discovery._meta
    monkeypatch.setattr(meta, "list_repositories", broken)
    resp = await client.get("/healthz")
    assert resp.status == 503
    assert await resp.json() == {"status": "unavailable",
                                 "reason": "metadata store failed: OperationalError"}


async def test_a_hanging_metadata_store_makes_it_unavailable(
        client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    async def hanging(n: int | None, last: str | None) -> list[str]:
        await asyncio.sleep(30)
        return []

    monkeypatch.setattr(client.app[REGISTRY].discovery._meta, "list_repositories", hanging)
    monkeypatch.setattr(health, "HEALTH_TIMEOUT", 0.05)
    resp = await client.get("/healthz")
    assert resp.status == 503
    assert (await resp.json())["reason"] == "metadata store timed out"
