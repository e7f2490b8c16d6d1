"""State lives in the data dir and the DB: uploads and manifests survive a new app instance."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from .conftest import ClientFactory
from .helpers import Client, error_of, push_manifest, start_upload
from .oci_fixtures import digest, image, layer

REPO = "lib/app"


async def test_upload_continues_on_a_restarted_app(
        aiohttp_client: ClientFactory, make_app: Callable[..., web.Application]) -> None:
    data = layer("restart", 30_000).data
    first = await aiohttp_client(make_app())
    location = await start_upload(first, REPO)
    resp = await first.patch(location, data=data[:10_000],
                             headers={"Content-Range": "0-9999"})
    assert resp.status == 202
    await first.close()

    second = await aiohttp_client(make_app())
    resp = await second.get(location)
    assert resp.status == 204
    assert resp.headers["Range"] == "0-9999"
    assert resp.headers["Location"] == location
    resp = await second.patch(location, data=data[10_000:20_000],
                              headers={"Content-Range": "10000-19999"})
    assert resp.status == 202, await resp.text()
    assert resp.headers["Range"] == "0-19999"
    resp = await second.put(location, params={"digest": digest(data)}, data=data[20_000:])
    assert resp.status == 201, await resp.text()
    resp = await second.get(f"/v2/{REPO}/blobs/{digest(data)}")
    assert await resp.read() == data


async def test_upload_moves_between_two_live_instances(
        client: Client, aiohttp_client: ClientFactory,
        make_app: Callable[..., web.Application]) -> None:
    """Like two workers behind one port: each request may land on either."""
    other = await aiohttp_client(make_app())
    data = layer("two", 4000).data
    location = await start_upload(client, REPO)
    for i, app in enumerate([client, other, client, other]):
        start = i * 1000
        resp = await app.patch(location, data=data[start:start + 1000],
                               headers={"Content-Range": f"{start}-{start + 999}"})
        assert resp.status == 202, (i, await resp.text())
    # The first instance's running hash is stale (it last saw 2000 bytes): it must notice.
    resp = await client.put(location, params={"digest": digest(data)})
    assert resp.status == 201, await resp.text()
    resp = await other.get(f"/v2/{REPO}/blobs/{digest(data)}")
    assert await resp.read() == data


async def test_sha512_upload_continues_after_restart(
        aiohttp_client: ClientFactory, make_app: Callable[..., web.Application]) -> None:
    data = layer("restart512", 5000).data
    first = await aiohttp_client(make_app())
    location = await start_upload(first, REPO)
    assert (await first.patch(location, data=data[:2500])).status == 202
    await first.close()
    second = await aiohttp_client(make_app())
    resp = await second.put(location, params={"digest": digest(data, "sha512")},
                            data=data[2500:])
    assert resp.status == 201, await resp.text()


async def test_cancelled_upload_stays_cancelled_after_restart(
        aiohttp_client: ClientFactory, make_app: Callable[..., web.Application]) -> None:
    first = await aiohttp_client(make_app())
    location = await start_upload(first, REPO)
    assert (await first.patch(location, data=b"abc")).status == 202
    assert (await first.delete(location)).status == 204
    await first.close()
    second = await aiohttp_client(make_app())
    await error_of(await second.get(location), 404, "BLOB_UPLOAD_UNKNOWN")


async def test_manifests_and_tags_survive_restart(
        aiohttp_client: ClientFactory, make_app: Callable[..., web.Application]) -> None:
    m = image()
    first = await aiohttp_client(make_app())
    await push_manifest(first, REPO, "v1", m)
    await first.close()
    second = await aiohttp_client(make_app())
    resp = await second.get(f"/v2/{REPO}/manifests/v1")
    assert resp.status == 200 and await resp.read() == m.body
    resp = await second.get(f"/v2/{REPO}/tags/list")
    assert (await resp.json())["tags"] == ["v1"]
