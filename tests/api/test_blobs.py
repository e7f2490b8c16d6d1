"""Blob uploads and blob reads (distribution-spec "Pushing blobs", "Pulling blobs",
"Deleting blobs", "Mounting a blob from another repository")."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import ClientResponse

from .helpers import Client, error_of, push_blob, start_upload
from .oci_fixtures import EMPTY_JSON, EMPTY_JSON_DIGEST, Blob, digest, layer

REPO = "lib/app"
OCTET = {"Content-Type": "application/octet-stream"}


async def stream(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def patch(client: Client, location: str, data: bytes | AsyncIterator[bytes],
                content_range: str | None = None) -> ClientResponse:
    headers = dict(OCTET)
    if content_range is not None:
        headers["Content-Range"] = content_range
    return await client.patch(location, data=data, headers=headers)


async def status_range(client: Client, location: str) -> str:
    resp = await client.get(location)
    assert resp.status == 204, await resp.text()
    return resp.headers["Range"]


async def assert_blob(client: Client, repo: str, data: bytes, d: str | None = None) -> None:
    d = d or digest(data)
    resp = await client.get(f"/v2/{repo}/blobs/{d}")
    assert resp.status == 200, await resp.text()
    assert await resp.read() == data
    assert resp.headers["Docker-Content-Digest"] == d
    assert resp.headers["Content-Length"] == str(len(data))
    assert resp.headers["Content-Type"] == "application/octet-stream"


async def assert_no_blob(client: Client, repo: str, d: str) -> None:
    resp = await client.head(f"/v2/{repo}/blobs/{d}")
    assert resp.status == 404
    await error_of(await client.get(f"/v2/{repo}/blobs/{d}"), 404, "BLOB_UNKNOWN")


# -- monolithic ------------------------------------------------------------------------------
async def test_post_then_put(client: Client) -> None:
    data = b"monolithic blob"
    d = digest(data)
    resp = await client.post(f"/v2/{REPO}/blobs/uploads/", headers={"Content-Length": "0"})
    assert resp.status == 202
    location = resp.headers["Location"]
    upload_id = location.rsplit("/", 1)[1]
    assert location == f"/v2/{REPO}/blobs/uploads/{upload_id}"
    assert resp.headers["Docker-Upload-UUID"] == upload_id
    assert resp.headers["Range"] == "0-0"
    resp = await client.put(location, params={"digest": d}, data=data, headers=OCTET)
    assert resp.status == 201
    assert resp.headers["Location"] == f"/v2/{REPO}/blobs/{d}"
    assert resp.headers["Docker-Content-Digest"] == d
    await assert_blob(client, REPO, data)
    # The session is closed.
    await error_of(await client.get(location), 404, "BLOB_UPLOAD_UNKNOWN")
    await error_of(await client.put(location, params={"digest": d}, data=data),
                   404, "BLOB_UPLOAD_UNKNOWN")


async def test_post_without_trailing_slash_starts_a_session(client: Client) -> None:
    resp = await client.post(f"/v2/{REPO}/blobs/uploads")
    assert resp.status == 202
    assert resp.headers["Location"].startswith(f"/v2/{REPO}/blobs/uploads/")


async def test_single_post_with_digest(client: Client) -> None:
    data = layer("single-post", 5000).data
    d = digest(data)
    resp = await client.post(f"/v2/{REPO}/blobs/uploads/", params={"digest": d}, data=data,
                             headers=OCTET)
    assert resp.status == 201, await resp.text()
    assert resp.headers["Location"] == f"/v2/{REPO}/blobs/{d}"
    assert resp.headers["Docker-Content-Digest"] == d
    await assert_blob(client, REPO, data)


async def test_single_post_with_wrong_digest_commits_nothing(client: Client) -> None:
    data, other = b"the content", b"another content"
    resp = await client.post(f"/v2/{REPO}/blobs/uploads/", params={"digest": digest(other)},
                             data=data, headers=OCTET)
    await error_of(resp, 400, "DIGEST_INVALID")
    await assert_no_blob(client, REPO, digest(other))
    await assert_no_blob(client, REPO, digest(data))


@pytest.mark.parametrize("data", [b"", EMPTY_JSON], ids=["empty", "empty-json"])
async def test_tiny_blobs_post_then_put_without_body(client: Client, data: bytes) -> None:
    """The empty blob (and the empty JSON config) pushed with a PUT that carries no body."""
    location = await start_upload(client, REPO)
    if data:
        assert (await patch(client, location, data)).status == 202
    resp = await client.put(location, params={"digest": digest(data)})
    assert resp.status == 201, await resp.text()
    await assert_blob(client, REPO, data)
    if data == EMPTY_JSON:
        assert digest(data) == EMPTY_JSON_DIGEST


async def test_empty_blob_single_post(client: Client) -> None:
    resp = await client.post(f"/v2/{REPO}/blobs/uploads/", params={"digest": digest(b"")},
                             data=b"")
    assert resp.status == 201, await resp.text()
    await assert_blob(client, REPO, b"")


# -- chunked ---------------------------------------------------------------------------------
async def test_chunked_in_order_then_put_with_final_chunk(client: Client) -> None:
    data = layer("chunked", 3000).data
    location = await start_upload(client, REPO)
    for start in (0, 1000):
        resp = await patch(client, location, data[start:start + 1000],
                           f"{start}-{start + 999}")
        assert resp.status == 202, await resp.text()
        assert resp.headers["Range"] == f"0-{start + 999}"
        assert resp.headers["Location"] == location
        location = resp.headers["Location"]
    resp = await client.get(location)
    assert resp.status == 204
    assert resp.headers["Range"] == "0-1999"
    assert resp.headers["Location"] == location
    assert resp.headers["Docker-Upload-UUID"] == location.rsplit("/", 1)[1]
    assert await resp.read() == b""
    resp = await client.put(location, params={"digest": digest(data)}, data=data[2000:],
                            headers={**OCTET, "Content-Range": "2000-2999"})
    assert resp.status == 201, await resp.text()
    await assert_blob(client, REPO, data)


async def test_chunked_then_put_without_body(client: Client) -> None:
    data = b"0123456789abcdefghij"
    location = await start_upload(client, REPO)
    assert (await patch(client, location, data[:10], "0-9")).status == 202
    assert (await patch(client, location, data[10:], "10-19")).status == 202
    resp = await client.put(location, params={"digest": digest(data)},
                            headers={"Content-Length": "0"})
    assert resp.status == 201
    await assert_blob(client, REPO, data)


async def test_patch_without_content_range_streams(client: Client) -> None:
    """PATCH with a chunked transfer body and no Content-Range ("streamed" upload)."""
    data = layer("streamed", 3 * (1 << 20) + 17).data  # more than client_max_size (1 MiB)
    location = await start_upload(client, REPO)
    half = len(data) // 2
    resp = await patch(client, location, stream(data[:1000], data[1000:half]))
    assert resp.status == 202, await resp.text()
    assert resp.headers["Range"] == f"0-{half - 1}"
    resp = await patch(client, resp.headers["Location"], stream(data[half:]))
    assert resp.status == 202
    assert resp.headers["Range"] == f"0-{len(data) - 1}"
    assert await status_range(client, location) == f"0-{len(data) - 1}"
    resp = await client.put(location, params={"digest": digest(data)})
    assert resp.status == 201, await resp.text()
    await assert_blob(client, REPO, data)


async def test_empty_patch_leaves_the_offset(client: Client) -> None:
    location = await start_upload(client, REPO)
    assert (await patch(client, location, b"abc")).status == 202
    resp = await patch(client, location, b"")
    assert resp.status == 202
    assert resp.headers["Range"] == "0-2"


@pytest.mark.parametrize("content_range", ["0-9", "5-14", "11-20", "20-29"])
async def test_chunk_out_of_order_is_416(client: Client, content_range: str) -> None:
    location = await start_upload(client, REPO)
    assert (await patch(client, location, b"0123456789", "0-9")).status == 202
    resp = await patch(client, location, b"ABCDEFGHIJ", content_range)
    await error_of(resp, 416, "BLOB_UPLOAD_INVALID")
    assert await status_range(client, location) == "0-9"
    # The client recovers from the offset the status gave it.
    assert (await patch(client, location, b"ABCDEFGHIJ", "10-19")).status == 202
    resp = await client.put(location, params={"digest": digest(b"0123456789ABCDEFGHIJ")})
    assert resp.status == 201


async def test_first_chunk_must_start_at_zero(client: Client) -> None:
    location = await start_upload(client, REPO)
    await error_of(await patch(client, location, b"abc", "1-3"), 416, "BLOB_UPLOAD_INVALID")
    assert await status_range(client, location) == "0-0"


@pytest.mark.parametrize("content_range", ["abc", "5-2", "-3", "0-", "bytes=0-2", "0-2-4"])
async def test_malformed_content_range(client: Client, content_range: str) -> None:
    location = await start_upload(client, REPO)
    await error_of(await patch(client, location, b"abc", content_range),
                   416, "BLOB_UPLOAD_INVALID")
    assert await status_range(client, location) == "0-0"


async def test_content_length_mismatching_content_range(client: Client) -> None:
    location = await start_upload(client, REPO)
    assert (await patch(client, location, b"0123456789", "0-9")).status == 202
    # Content-Length 5, Content-Range of 10 bytes.
    await error_of(await patch(client, location, b"ABCDE", "10-19"), 400, "SIZE_INVALID")
    assert await status_range(client, location) == "0-9"
    # Content-Length 15, Content-Range of 10 bytes.
    await error_of(await patch(client, location, b"ABCDEFGHIJKLMNO", "10-19"),
                   400, "SIZE_INVALID")
    assert await status_range(client, location) == "0-9"


@pytest.mark.parametrize("body", [(b"ABC", b"DE"), (b"ABCDEFGHIJ", b"KLMNO")],
                         ids=["short", "long"])
async def test_streamed_body_not_matching_content_range_keeps_offset(
        client: Client, body: tuple[bytes, ...]) -> None:
    """No Content-Length (chunked transfer): the mismatch is found while streaming."""
    location = await start_upload(client, REPO)
    assert (await patch(client, location, b"0123456789", "0-9")).status == 202
    await error_of(await patch(client, location, stream(*body), "10-19"), 400, "SIZE_INVALID")
    assert await status_range(client, location) == "0-9"
    # Nothing of the failed chunk was kept: the blob completes with the right bytes.
    assert (await patch(client, location, b"abcdefghij", "10-19")).status == 202
    data = b"0123456789abcdefghij"
    resp = await client.put(location, params={"digest": digest(data)})
    assert resp.status == 201, await resp.text()
    await assert_blob(client, REPO, data)


# -- status, cancel, foreign and unknown sessions ------------------------------------------
async def test_status_of_a_new_session(client: Client) -> None:
    location = await start_upload(client, REPO)
    resp = await client.get(location)
    assert resp.status == 204
    assert resp.headers["Location"] == location
    assert resp.headers["Range"] == "0-0"
    assert resp.headers["Docker-Upload-UUID"] == location.rsplit("/", 1)[1]


async def test_cancel_upload(client: Client) -> None:
    location = await start_upload(client, REPO)
    assert (await patch(client, location, b"abc", "0-2")).status == 202
    resp = await client.delete(location)
    assert resp.status == 204
    await error_of(await client.get(location), 404, "BLOB_UPLOAD_UNKNOWN")
    await error_of(await patch(client, location, b"def", "3-5"), 404, "BLOB_UPLOAD_UNKNOWN")
    await error_of(await client.put(location, params={"digest": digest(b"abc")}),
                   404, "BLOB_UPLOAD_UNKNOWN")
    await error_of(await client.delete(location), 404, "BLOB_UPLOAD_UNKNOWN")
    await assert_no_blob(client, REPO, digest(b"abc"))


@pytest.mark.parametrize("method", ["GET", "PATCH", "PUT", "DELETE"])
async def test_upload_of_another_repository_is_unknown(client: Client, method: str) -> None:
    location = await start_upload(client, REPO)
    assert (await patch(client, location, b"abc")).status == 202
    foreign = location.replace(f"/v2/{REPO}/", "/v2/other/")
    resp = await client.request(method, foreign, params={"digest": digest(b"abc")},
                                data=b"def" if method == "PATCH" else None)
    await error_of(resp, 404, "BLOB_UPLOAD_UNKNOWN")
    # The session is untouched in its own repository.
    assert await status_range(client, location) == "0-2"
    await assert_no_blob(client, "other", digest(b"abc"))


@pytest.mark.parametrize("upload_id", ["0123456789abcdef0123456789abcdef", "nope", "x.y",
                                       "a" * 300, "%00"])
async def test_unknown_upload_id(client: Client, upload_id: str) -> None:
    for method in ("GET", "PATCH", "PUT", "DELETE"):
        resp = await client.request(method, f"/v2/{REPO}/blobs/uploads/{upload_id}",
                                    params={"digest": digest(b"")}, data=b"x")
        await error_of(resp, 404, "BLOB_UPLOAD_UNKNOWN")


# -- digests ---------------------------------------------------------------------------------
async def test_put_with_wrong_digest_commits_nothing(client: Client) -> None:
    data = b"0123456789"
    wrong = digest(b"something else")
    location = await start_upload(client, REPO)
    assert (await patch(client, location, data[:5], "0-4")).status == 202
    resp = await client.put(location, params={"digest": wrong}, data=data[5:], headers=OCTET)
    err = await error_of(resp, 400, "DIGEST_INVALID")
    assert err["message"]
    await assert_no_blob(client, REPO, wrong)
    await assert_no_blob(client, REPO, digest(data))


BAD_DIGESTS = {
    "missing-encoded": "sha256:",
    "short": "sha256:" + "0" * 63,
    "long": "sha256:" + "0" * 65,
    "upper-hex": "sha256:" + "A" * 64,
    "not-hex": "sha256:" + "g" * 64,
    "no-colon": "sha256" + "0" * 64,
    "empty": "",
    "sha512-short": "sha512:" + "0" * 64,
    "garbage": "not a digest",
    "upper-alg": "SHA256:" + "0" * 64,
}
UNSUPPORTED_DIGESTS = {
    "md5": "md5:" + "0" * 32,
    "sha384": "sha384:" + "0" * 96,
    "sha1": "sha1:" + "0" * 40,
}


@pytest.mark.parametrize("bad", list(BAD_DIGESTS.values()) + list(UNSUPPORTED_DIGESTS.values()),
                         ids=list(BAD_DIGESTS) + list(UNSUPPORTED_DIGESTS))
async def test_malformed_digest_on_put_keeps_the_session(client: Client, bad: str) -> None:
    location = await start_upload(client, REPO)
    assert (await patch(client, location, b"abc", "0-2")).status == 202
    resp = await client.put(location, params={"digest": bad})
    await error_of(resp, 400, "DIGEST_INVALID")
    assert await status_range(client, location) == "0-2"
    resp = await client.put(location, params={"digest": digest(b"abc")})
    assert resp.status == 201


@pytest.mark.parametrize("bad", list(UNSUPPORTED_DIGESTS.values()), ids=list(UNSUPPORTED_DIGESTS))
async def test_unsupported_algorithm_is_named(client: Client, bad: str) -> None:
    resp = await client.post(f"/v2/{REPO}/blobs/uploads/", params={"digest": bad}, data=b"x")
    err = await error_of(resp, 400, "DIGEST_INVALID")
    assert "algorithm" in err["message"] + str(err.get("detail"))


async def test_put_without_digest(client: Client) -> None:
    location = await start_upload(client, REPO)
    await error_of(await client.put(location, data=b"abc"), 400, "DIGEST_INVALID")


@pytest.mark.parametrize("bad", [d for d in BAD_DIGESTS.values() if d and not d.endswith(":")])
async def test_malformed_digest_in_blob_url(client: Client, bad: str) -> None:
    for method in ("GET", "HEAD", "DELETE"):
        resp = await client.request(method, f"/v2/{REPO}/blobs/{bad}")
        if method == "HEAD":
            assert resp.status == 400
        else:
            await error_of(resp, 400, "DIGEST_INVALID")


async def test_sha512_end_to_end(client: Client) -> None:
    data = layer("sha512", 4000).data
    d = digest(data, "sha512")
    # monolithic
    location = await start_upload(client, REPO)
    resp = await client.put(location, params={"digest": d}, data=data, headers=OCTET)
    assert resp.status == 201, await resp.text()
    assert resp.headers["Docker-Content-Digest"] == d
    await assert_blob(client, REPO, data, d)
    # chunked, in another repository
    location = await start_upload(client, "other")
    assert (await patch(client, location, data[:1500], "0-1499")).status == 202
    assert (await patch(client, location, data[1500:3000], "1500-2999")).status == 202
    resp = await client.put(location, params={"digest": d}, data=data[3000:])
    assert resp.status == 201, await resp.text()
    await assert_blob(client, "other", data, d)
    # single POST, wrong content
    resp = await client.post(f"/v2/{REPO}/blobs/uploads/", params={"digest": d}, data=b"x")
    await error_of(resp, 400, "DIGEST_INVALID")
    # range read and delete
    resp = await client.get(f"/v2/{REPO}/blobs/{d}", headers={"Range": "bytes=10-19"})
    assert resp.status == 206 and await resp.read() == data[10:20]
    assert (await client.delete(f"/v2/{REPO}/blobs/{d}")).status == 202
    await assert_no_blob(client, REPO, d)
    await assert_blob(client, "other", data, d)


# -- pulling ---------------------------------------------------------------------------------
async def test_head_blob(client: Client) -> None:
    data = layer("head", 777).data
    d = await push_blob(client, REPO, data)
    resp = await client.head(f"/v2/{REPO}/blobs/{d}")
    assert resp.status == 200
    assert resp.headers["Content-Length"] == "777"
    assert resp.headers["Docker-Content-Digest"] == d
    assert resp.headers["Content-Type"] == "application/octet-stream"
    assert await resp.read() == b""


@pytest.mark.parametrize(("header", "start", "end"), [
    ("bytes=0-9", 0, 10),
    ("bytes=10-19", 10, 20),
    ("bytes=990-", 990, 1000),
    ("bytes=-5", 995, 1000),
    ("bytes=-5000", 0, 1000),
    ("bytes=500-5000", 500, 1000),
    ("bytes=999-999", 999, 1000),
])
async def test_range_request(client: Client, header: str, start: int, end: int) -> None:
    data = layer("range", 1000).data
    d = await push_blob(client, REPO, data)
    resp = await client.get(f"/v2/{REPO}/blobs/{d}", headers={"Range": header})
    assert resp.status == 206
    assert await resp.read() == data[start:end]
    assert resp.headers["Content-Range"] == f"bytes {start}-{end - 1}/1000"
    assert resp.headers["Content-Length"] == str(end - start)
    assert resp.headers["Docker-Content-Digest"] == d


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=1000-2000", "bytes=5000-5001",
                                    "bytes=9-3", "items=0-1", "bytes=0-1,5-6"])
async def test_unsatisfiable_range_is_416(client: Client, header: str) -> None:
    data = layer("range", 1000).data
    d = await push_blob(client, REPO, data)
    resp = await client.get(f"/v2/{REPO}/blobs/{d}", headers={"Range": header})
    await error_of(resp, 416, "RANGE_INVALID")
    assert resp.headers["Content-Range"] == "bytes */1000"


async def test_blob_of_another_repository_is_invisible_until_mounted(client: Client) -> None:
    data = b"private layer"
    d = await push_blob(client, "team/a", data)
    await assert_no_blob(client, "team/b", d)
    await error_of(await client.delete(f"/v2/team/b/blobs/{d}"), 404, "BLOB_UNKNOWN")
    resp = await client.post("/v2/team/b/blobs/uploads/", params={"mount": d, "from": "team/a"})
    assert resp.status == 201
    assert resp.headers["Location"] == f"/v2/team/b/blobs/{d}"
    assert resp.headers["Docker-Content-Digest"] == d
    await assert_blob(client, "team/b", data)
    await assert_blob(client, "team/a", data)


@pytest.mark.parametrize("params", [
    {"mount": "{d}"},                                  # no from
    {"mount": "{d}", "from": ""},                      # empty from
    {"mount": "{d}", "from": "elsewhere"},             # source lacks it
    {"mount": "{d}", "from": "nosuchrepo"},            # unknown source
    {"mount": "{d}", "from": "Not/A/Valid/Name"},      # invalid source: unable to mount
])
async def test_mount_falls_back_to_an_upload_session(client: Client,
                                                     params: dict[str, str]) -> None:
    data = b"mount me"
    d = await push_blob(client, "source", data)
    await push_blob(client, "elsewhere", b"unrelated")
    resp = await client.post(f"/v2/{REPO}/blobs/uploads/",
                             params={k: v.format(d=d) for k, v in params.items()})
    assert resp.status == 202, await resp.text()
    location = resp.headers["Location"]
    assert location.startswith(f"/v2/{REPO}/blobs/uploads/")
    await assert_no_blob(client, REPO, d)
    resp = await client.put(location, params={"digest": d}, data=data)
    assert resp.status == 201
    await assert_blob(client, REPO, data)


async def test_mount_with_malformed_digest(client: Client) -> None:
    resp = await client.post(f"/v2/{REPO}/blobs/uploads/",
                             params={"mount": "sha256:nothex", "from": "source"})
    await error_of(resp, 400, "DIGEST_INVALID")


async def test_delete_blob(client: Client) -> None:
    d = await push_blob(client, REPO, b"doomed")
    await push_blob(client, "keeper", b"doomed")
    resp = await client.delete(f"/v2/{REPO}/blobs/{d}")
    assert resp.status == 202
    await assert_no_blob(client, REPO, d)
    await error_of(await client.delete(f"/v2/{REPO}/blobs/{d}"), 404, "BLOB_UNKNOWN")
    await assert_blob(client, "keeper", b"doomed")


async def test_unknown_blob(client: Client) -> None:
    await push_blob(client, REPO, b"something")
    d = digest(b"never pushed")
    await assert_no_blob(client, REPO, d)
    await assert_no_blob(client, "no/such/repo", d)
    await error_of(await client.delete(f"/v2/{REPO}/blobs/{d}"), 404, "BLOB_UNKNOWN")


async def test_repushing_an_existing_blob(client: Client, data_dir: Path) -> None:
    blob = Blob(b"twice")
    await push_blob(client, REPO, blob)
    stored = data_dir / "blobs" / "sha256" / blob.digest[7:9] / blob.digest[7:]
    inode = stored.stat().st_ino
    await push_blob(client, REPO, blob)
    await push_blob(client, "other", blob)
    await assert_blob(client, REPO, b"twice")
    await assert_blob(client, "other", b"twice")
    # The stored file was kept (not replaced by each re-push) and no upload is left behind.
    assert stored.stat().st_ino == inode
    assert list((data_dir / "uploads").iterdir()) == []
