"""One writer per upload session: two requests writing to one session at once never mix their
bytes, and a blob is placed only as the bytes its digest was checked against.

Before the writer lock, two PATCHes at one offset both wrote into the session's file; the
loser failed only when recording its offset, its bytes stayed, and the PUT filed the file
under the winner's digest (4 runs in 5). A PUT while a PATCH streamed placed a file holding
the PATCH's first bytes too.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from .oci_fixtures import digest
from .test_raw_body import (
    MIB,
    OCTET,
    REPO,
    Client,
    assert_blob,
    assert_no_blob,
    blob,
    error_code,
    head,
    patch,
    raw,
    response,
    settled,
    status_range,
)


async def chunked(data: bytes) -> AsyncIterator[bytes]:
    """A body sent with Transfer-Encoding: chunked: it stays on the event loop."""
    for i in range(0, len(data), 256 << 10):
        yield data[i:i + (256 << 10)]
        await asyncio.sleep(0)


@pytest.mark.parametrize("taken", [True, False], ids=["taken", "on-the-loop"])
async def test_two_patches_at_one_offset_never_mix(client: Client, taken: bool) -> None:
    for round_ in range(5):
        location = (await client.post(f"/v2/{REPO}/blobs/uploads/")).headers["Location"]
        a, b = blob(3 * MIB + 11, seed=2 * round_), blob(3 * MIB + 11, seed=2 * round_ + 1)
        if taken:
            ra, rb = await asyncio.gather(patch(client, location, a, 0),
                                          patch(client, location, b, 0))
        else:
            ra, rb = await asyncio.gather(
                client.patch(location, data=chunked(a), headers=OCTET),
                client.patch(location, data=chunked(b), headers=OCTET))
        statuses = sorted([ra.status, rb.status])
        assert statuses == [202, 416], statuses  # one wins, the other is told to retry
        loser = ra if ra.status == 416 else rb
        assert error_code(await loser.read()) == "BLOB_UPLOAD_INVALID"
        win = a if ra.status == 202 else b
        assert await status_range(client, location) == f"0-{len(win) - 1}"
        resp = await client.put(location, params={"digest": digest(win)})
        assert resp.status == 201, await resp.text()
        await assert_blob(client, win)
        await assert_no_blob(client, digest(b if win is a else a))


async def test_a_put_while_a_patch_streams_is_refused_then_succeeds(
        client: Client, data_dir: Path) -> None:
    location = (await client.post(f"/v2/{REPO}/blobs/uploads/")).headers["Location"]
    first = blob(MIB + 3, seed=7)
    assert (await patch(client, location, first, 0)).status == 202
    second = blob(3 * MIB, seed=8)
    async with raw(client) as conn:
        # a PATCH whose body is half sent: it holds the session's writer lock
        await conn.send(head("PATCH", location, len(second),
                             Content_Range=f"{len(first)}-{len(first) + len(second) - 1}")
                        + second[:MIB])
        await settled(client, busy=True)
        for _ in range(100):  # until the pump has the file open (its lock taken)
            resp = await client.put(location, params={"digest": digest(first)})
            if resp.status != 201:
                break
            await asyncio.sleep(0.01)
        assert resp.status == 416, await resp.text()
        assert error_code(await resp.read()) == "BLOB_UPLOAD_INVALID"
        assert resp.headers["Range"] == f"0-{len(first) - 1}"
        await conn.send(second[MIB:])
        status, _, _, _ = response(await conn.until_closed())
        assert status == 202
    resp = await client.put(location, params={"digest": digest(first + second)})
    assert resp.status == 201, await resp.text()
    await assert_blob(client, first + second)
    await assert_no_blob(client, digest(first))


async def test_a_stalled_big_body_leaves_the_loops_executor_free(client: Client) -> None:
    # A taken body is pumped on threads of its own: with the loop's executor down to one
    # thread, that thread still runs other work while a body waits for its client (on the
    # executor, a few slow pushes would hold up every small request's thread hop).
    loop = asyncio.get_running_loop()
    loop.set_default_executor(ThreadPoolExecutor(max_workers=1))
    location = (await client.post(f"/v2/{REPO}/blobs/uploads/")).headers["Location"]
    data = blob(3 * MIB, seed=9)
    async with raw(client) as conn:
        await conn.send(head("PATCH", location, len(data), Content_Range=f"0-{len(data) - 1}")
                        + data[:MIB])
        await settled(client, busy=True)
        await asyncio.sleep(0.2)  # the pump is waiting for the rest
        assert await asyncio.wait_for(loop.run_in_executor(None, lambda: 42), 5) == 42
        await conn.send(data[MIB:])
        status, _, _, _ = response(await conn.until_closed())
    assert status == 202
    assert await status_range(client, location) == f"0-{len(data) - 1}"
