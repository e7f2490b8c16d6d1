"""Upload sessions are bounded per account (issue 12): an account may hold
``max_upload_sessions`` open sessions (429 ``TOOMANYREQUESTS`` with ``Retry-After`` beyond,
whether it pushes with Basic or a bearer token, an admin included), other accounts are not
affected, a single-request push opens no lasting session; and ``max_concurrent_uploads`` is
shared fairly between accounts (one account's slow uploads leave room for the others)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from typing import Any

from strata.registry.limits import Limits

from .conftest import IMAGE, OTHER_IMAGE, AuthEnv, EnvFactory
from .helpers import assert_refused, bearer


async def open_session(env: AuthEnv, headers: dict[str, str], repo: str = IMAGE) -> Any:
    return await env.client.post(f"/v2/{repo}/blobs/uploads/", headers=headers)


async def test_open_sessions_are_capped_per_account(make_env: EnvFactory) -> None:
    env = await make_env(registry_limits=Limits(max_upload_sessions=3))
    maint = env.creds("maint")
    token = bearer(await env.token("maint", f"repository:{IMAGE}:pull,push"))
    locations = []
    for headers in (maint, token, maint):  # Basic and bearer count for the same account
        resp = await open_session(env, headers)
        assert resp.status == 202, await resp.text()
        locations.append(resp.headers["Location"])
    for headers in (maint, token):
        resp = await open_session(env, headers)
        doc = await assert_refused(resp, 429, "TOOMANYREQUESTS")
        assert resp.headers["Retry-After"].isdigit()
        message = doc["errors"][0]["message"]
        assert "maint has 3 open upload sessions" in message and "most allowed is 3" in message
    # A mount that falls back to a session is a session too.
    resp = await env.client.post(f"/v2/{IMAGE}/blobs/uploads/",
                                 params={"mount": "sha256:" + "0" * 64, "from": OTHER_IMAGE},
                                 headers=maint)
    await assert_refused(resp, 429, "TOOMANYREQUESTS")
    # Other accounts are not affected; the admin has a cap of its own.
    resp = await open_session(env, env.creds("other"), OTHER_IMAGE)
    assert resp.status == 202
    for _ in range(3):
        assert (await open_session(env, env.creds("admin"))).status == 202
    await assert_refused(await open_session(env, env.creds("admin")), 429, "TOOMANYREQUESTS")
    # A single-request push needs no lasting session: it goes through at the cap.
    data = b"one request"
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    resp = await env.client.post(f"/v2/{IMAGE}/blobs/uploads/", params={"digest": digest},
                                 data=data, headers=maint)
    assert resp.status == 201, await resp.text()
    # Finishing or cancelling a session frees its place.
    assert (await env.client.delete(locations[0], headers=maint)).status == 204
    resp = await env.client.put(locations[1], params={"digest": digest}, data=data,
                                headers=maint)
    assert resp.status == 201, await resp.text()
    for _ in range(2):
        assert (await open_session(env, maint)).status == 202
    await assert_refused(await open_session(env, maint), 429, "TOOMANYREQUESTS")


async def test_the_session_records_its_account(make_env: EnvFactory) -> None:
    env = await make_env()
    resp = await open_session(env, env.creds("maint"))
    upload_id = resp.headers["Docker-Upload-UUID"]
    import sqlalchemy as sa

    from strata.meta import schema as t
    with env.engine.connect() as conn:
        row = conn.execute(sa.select(t.uploads.c.account, t.uploads.c.repository).where(
            t.uploads.c.id == upload_id)).one()
    assert tuple(row) == ("maint", IMAGE)


class Held:
    """A request body that sends one byte, then waits until released."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.sent = asyncio.Event()

    async def body(self) -> AsyncIterator[bytes]:
        yield b"x"
        self.sent.set()
        await self.release.wait()


async def test_upload_slots_are_shared_fairly_between_accounts(make_env: EnvFactory) -> None:
    """Four slots: ``maint`` alone may hold half (2); its third slow PATCH gets 429 naming its
    fair share while ``other`` still gets a slot, and so does the admin after it."""
    env = await make_env(registry_limits=Limits(max_concurrent_uploads=4))
    maint, other = env.creds("maint"), env.creds("other")
    held: list[Held] = []
    tasks = []

    async def slow_patch(headers: dict[str, str], repo: str) -> Any:
        location = (await open_session(env, headers, repo)).headers["Location"]
        h = Held()
        held.append(h)
        task = asyncio.create_task(env.client.patch(location, data=h.body(), headers={
            **headers, "Content-Type": "application/octet-stream"}))
        tasks.append(task)
        await h.sent.wait()
        # Refused: the answer comes while the body still waits; admitted: nothing comes.
        done, _ = await asyncio.wait([task], timeout=0.5)
        return task.result() if done else None

    try:
        assert await slow_patch(maint, IMAGE) is None
        assert await slow_patch(maint, IMAGE) is None
        refused = await slow_patch(maint, IMAGE)
        assert refused is not None
        doc = await assert_refused(refused, 429, "TOOMANYREQUESTS")
        assert "fair share" in doc["errors"][0]["message"]
        assert refused.headers["Retry-After"] == "1"
        # Another account gets a slot: 2 accounts, a share of 4 // 3 = 1 each.
        assert await slow_patch(other, OTHER_IMAGE) is None
        refused = await slow_patch(other, OTHER_IMAGE)
        assert refused is not None
        await assert_refused(refused, 429, "TOOMANYREQUESTS")
        # The fourth slot: still free for a third account (4 // 4 = 1).
        assert await slow_patch(env.creds("admin"), IMAGE) is None
    finally:
        for h in held:
            h.release.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
    accepted = [r for r in results if not isinstance(r, BaseException) and r.status == 202]
    assert len(accepted) == 4
    # Everything released: maint may take slots again.
    location = (await open_session(env, maint)).headers["Location"]
    resp = await env.client.patch(location, data=b"y", headers={
        **maint, "Content-Type": "application/octet-stream"})
    assert resp.status == 202
