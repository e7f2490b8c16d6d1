"""Upload sessions that received nothing expire after ``upload_idle_seconds`` (600 s by
default), long before the 24 h TTL of sessions with bytes; a single request still streaming
its bytes keeps its session. Sessions of an account count toward its cap only while open."""

from __future__ import annotations

import time
from typing import Any

import pytest

from strata.errors import Code, RegistryError
from strata.oci.names import RepositoryName
from strata.registry.limits import Limits
from strata.server.keys import REGISTRY

from .helpers import error_of

REPO = "idle/a"


def at(offset: float) -> Any:
    start = time.time()
    return lambda: start + offset


async def test_an_empty_session_expires_when_idle(aiohttp_client: Any, make_app: Any,
                                                  data_dir: Any) -> None:
    assert Limits().upload_idle_seconds == 600.0
    app = make_app(Limits(upload_idle_seconds=600, upload_ttl_seconds=86400))
    client = await aiohttp_client(app)
    uploads = app[REGISTRY].uploads
    empty = (await client.post(f"/v2/{REPO}/blobs/uploads/")).headers["Location"]
    chunked = (await client.post(f"/v2/{REPO}/blobs/uploads/")).headers["Location"]
    resp = await client.patch(chunked, data=b"some bytes",
                              headers={"Content-Type": "application/octet-stream"})
    assert resp.status == 202
    streaming = (await client.post(f"/v2/{REPO}/blobs/uploads/")).headers["Location"]
    # A request streaming into this one: bytes stored, nothing recorded until it ends.
    streaming_id = streaming.rsplit("/", 1)[1]
    (data_dir / "uploads" / streaming_id).write_bytes(b"arriving")

    uploads._clock = at(601)
    await error_of(await client.get(empty), 404, "BLOB_UPLOAD_UNKNOWN")
    assert (await client.get(chunked)).status == 204  # it received bytes: the TTL applies
    assert await uploads.expire() == 1
    assert not (data_dir / "uploads" / empty.rsplit("/", 1)[1]).exists()
    assert (data_dir / "uploads" / streaming_id).exists()

    uploads._clock = at(86401)
    assert await uploads.expire() == 2  # the TTL: the chunked one and the stalled stream
    await error_of(await client.get(chunked), 404, "BLOB_UPLOAD_UNKNOWN")


async def test_idle_sessions_stop_counting_toward_the_cap(aiohttp_client: Any,
                                                          make_app: Any) -> None:
    app = make_app(Limits(max_upload_sessions=2, upload_idle_seconds=600))
    await aiohttp_client(app)
    uploads = app[REGISTRY].uploads
    repo = RepositoryName.parse(REPO)
    first = await uploads.start(repo, "alice")
    await uploads.start(repo, "alice")
    with pytest.raises(RegistryError) as refused:
        await uploads.start(repo, "alice")
    assert refused.value.code is Code.TOOMANYREQUESTS and refused.value.status == 429
    await uploads.start(repo, "bob")  # per account
    uploads._clock = at(601)  # both of alice's received nothing for 10 min
    assert (await uploads.start(repo, "alice")).account == "alice"
    assert (await uploads.start(repo, "alice")).id != first.id
