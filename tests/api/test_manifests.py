"""Manifests and tags (distribution-spec "Pushing manifests", "Pulling manifests",
"Deleting tags", "Deleting manifests")."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from .helpers import Client, error_of, push_blob, push_manifest
from .oci_fixtures import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    DOCKER_SCHEMA1_SIGNED,
    EMPTY_CONFIG,
    EMPTY_JSON_DIGEST,
    OCI_INDEX,
    OCI_MANIFEST,
    Blob,
    Manifest,
    artifact,
    config,
    digest,
    image,
    index,
    layer,
)

REPO = "lib/app"
MIB = 1 << 20


async def put(client: Client, ref: str, body: bytes, content_type: str | None = OCI_MANIFEST,
              repo: str = REPO, **params: Any) -> Any:
    headers = {"Content-Type": content_type} if content_type else {}
    # aiohttp's client warns about sending large raw bytes; a file object is streamed.
    data = io.BytesIO(body) if len(body) > MIB else body
    return await client.put(f"/v2/{repo}/manifests/{ref}", data=data, headers=headers,
                            params=params or None)


async def assert_manifest(client: Client, ref: str, m: Manifest, repo: str = REPO) -> None:
    for method in ("GET", "HEAD"):
        resp = await client.request(method, f"/v2/{repo}/manifests/{ref}")
        assert resp.status == 200, (method, await resp.text())
        assert resp.headers["Content-Type"] == m.media_type
        assert resp.headers["Docker-Content-Digest"] == m.digest
        assert resp.headers["Content-Length"] == str(len(m.body))
        assert await resp.read() == (m.body if method == "GET" else b"")


async def tags(client: Client, repo: str = REPO) -> list[str]:
    resp = await client.get(f"/v2/{repo}/tags/list")
    assert resp.status == 200
    result: list[str] = (await resp.json())["tags"]
    return result


def docker_image(seed: str = "docker") -> Manifest:
    return image(seed, media_type=DOCKER_MANIFEST, layers=2)


KINDS: dict[str, Callable[[], Manifest]] = {
    "oci-image": lambda: image("oci", layers=2),
    "oci-image-no-layers": lambda: image("nolayers", layers=0),
    "docker-v2s2": docker_image,
    "artifact": lambda: artifact("application/vnd.example.thing"),
}


async def push_any(client: Client, kind: str, ref: str) -> Manifest:
    if kind in KINDS:
        m = KINDS[kind]()
        await push_manifest(client, REPO, ref, m)
        return m
    docker = kind == "docker-list"
    children = ([docker_image("c1"), docker_image("c2")] if docker
                else [image("c1"), image("c2")])
    for c in children:
        await push_manifest(client, REPO, c.digest, c)
    m = index(children, media_type=DOCKER_LIST if docker else OCI_INDEX)
    await push_manifest(client, REPO, ref, m, blobs=False)
    return m


ALL_KINDS = [*KINDS, "oci-index", "docker-list"]


@pytest.mark.parametrize("kind", ALL_KINDS)
async def test_push_by_tag_and_pull_by_tag_and_digest(client: Client, kind: str) -> None:
    m = await push_any(client, kind, "v1")
    await assert_manifest(client, "v1", m)
    await assert_manifest(client, m.digest, m)
    assert "v1" in await tags(client)


@pytest.mark.parametrize("kind", ALL_KINDS)
async def test_push_by_digest(client: Client, kind: str) -> None:
    m = await push_any(client, kind, "placeholder")
    resp = await client.delete(f"/v2/{REPO}/manifests/{m.digest}")
    assert resp.status == 202
    resp = await put(client, m.digest, m.body, m.media_type)
    assert resp.status == 201, await resp.text()
    assert resp.headers["Location"] == f"/v2/{REPO}/manifests/{m.digest}"
    assert resp.headers["Docker-Content-Digest"] == m.digest
    await assert_manifest(client, m.digest, m)
    assert "placeholder" not in await tags(client)


async def test_put_response_headers(client: Client) -> None:
    m = image()
    resp = await push_manifest(client, REPO, "latest", m)
    assert resp.status == 201
    assert resp.headers["Location"] == f"/v2/{REPO}/manifests/{m.digest}"
    assert resp.headers["Docker-Content-Digest"] == m.digest
    assert "OCI-Subject" not in resp.headers


async def test_push_by_digest_mismatch(client: Client) -> None:
    m, other = image("a"), image("b")
    for b in m.blobs:
        await push_blob(client, REPO, b)
    await error_of(await put(client, other.digest, m.body), 400, "DIGEST_INVALID")
    for ref in (m.digest, other.digest):
        await error_of(await client.get(f"/v2/{REPO}/manifests/{ref}"), 404, "MANIFEST_UNKNOWN")


async def test_push_by_sha512_digest(client: Client) -> None:
    blobs = (Blob(config("s").data, config().media_type, "sha512"),
             Blob(layer("s").data, layer("s").media_type, "sha512"))
    m = image("s", cfg=blobs[0], layer_blobs=blobs[1:])
    for b in blobs:
        await push_blob(client, REPO, b)
    d512 = digest(m.body, "sha512")
    resp = await put(client, d512, m.body)
    assert resp.status == 201, await resp.text()
    assert resp.headers["Docker-Content-Digest"] == d512
    resp = await client.get(f"/v2/{REPO}/manifests/{d512}")
    assert resp.status == 200 and await resp.read() == m.body
    assert resp.headers["Docker-Content-Digest"] == d512


async def test_tag_query_parameters_set_several_tags(client: Client) -> None:
    m = image()
    for b in m.blobs:
        await push_blob(client, REPO, b)
    resp = await client.put(f"/v2/{REPO}/manifests/{m.digest}?tag=a&tag=b&tag=c", data=m.body,
                            headers={"Content-Type": m.media_type})
    assert resp.status == 201, await resp.text()
    assert await tags(client) == ["a", "b", "c"]
    for tag in ("a", "b", "c"):
        await assert_manifest(client, tag, m)


async def test_invalid_tag_query_parameter(client: Client) -> None:
    m = image()
    for b in m.blobs:
        await push_blob(client, REPO, b)
    resp = await put(client, m.digest, m.body, tag="-bad")
    await error_of(resp, 400, "TAG_INVALID")
    await error_of(await client.get(f"/v2/{REPO}/manifests/{m.digest}"), 404, "MANIFEST_UNKNOWN")


@pytest.mark.parametrize("tag", ["-lead", ".dot", "a" * 129, "a+b", "a%20b"])
async def test_invalid_tag_in_url(client: Client, tag: str) -> None:
    m = image()
    await push_manifest(client, REPO, "ok", m)
    await error_of(await put(client, tag, m.body), 400, "TAG_INVALID")
    # A lookup of a reference that is neither a tag nor a digest names no manifest: 404
    # (the distribution-spec conformance suite), for GET, HEAD and DELETE alike.
    await error_of(await client.get(f"/v2/{REPO}/manifests/{tag}"), 404, "MANIFEST_UNKNOWN")
    assert (await client.head(f"/v2/{REPO}/manifests/{tag}")).status == 404
    await error_of(await client.delete(f"/v2/{REPO}/manifests/{tag}"), 404, "MANIFEST_UNKNOWN")


@pytest.mark.parametrize("tag", ["a" * 128, "_underscore", "Upper.Case-1_2", "0"])
async def test_valid_tags(client: Client, tag: str) -> None:
    m = image()
    await push_manifest(client, REPO, tag, m)
    await assert_manifest(client, tag, m)


async def test_moving_a_tag(client: Client) -> None:
    first, second = image("first"), image("second")
    await push_manifest(client, REPO, "latest", first)
    await push_manifest(client, REPO, "latest", second)
    await assert_manifest(client, "latest", second)
    await assert_manifest(client, first.digest, first)


async def test_artifact_with_empty_config(client: Client) -> None:
    subject = image()
    await push_manifest(client, REPO, "v1", subject)
    m = artifact("application/vnd.example.sbom.v1", subject,
                 annotations={"org.example.kind": "sbom"})
    assert EMPTY_CONFIG.digest == EMPTY_JSON_DIGEST and EMPTY_CONFIG.data == b"{}"
    doc = json.loads(m.body)
    assert doc["config"] == {"mediaType": "application/vnd.oci.empty.v1+json",
                             "digest": EMPTY_JSON_DIGEST, "size": 2}
    resp = await push_manifest(client, REPO, m.digest, m)
    assert resp.headers["OCI-Subject"] == subject.digest
    await assert_manifest(client, m.digest, m)
    resp = await client.get(f"/v2/{REPO}/blobs/{EMPTY_JSON_DIGEST}")
    assert await resp.read() == b"{}"


async def test_subject_need_not_exist(client: Client) -> None:
    absent = image("never-pushed")
    m = artifact("application/vnd.example.sig", absent)
    resp = await push_manifest(client, REPO, m.digest, m)
    assert resp.headers["OCI-Subject"] == absent.digest


async def test_index_with_subject_answers_oci_subject(client: Client) -> None:
    subject, child = image("subject"), image("child")
    await push_manifest(client, REPO, "v1", subject)
    await push_manifest(client, REPO, child.digest, child)
    m = index([child], subject=subject, artifact_type="application/vnd.example.bundle")
    resp = await push_manifest(client, REPO, m.digest, m, blobs=False)
    assert resp.headers["OCI-Subject"] == subject.digest


# -- refused pushes ---------------------------------------------------------------------------
@pytest.mark.parametrize("media_type", [OCI_INDEX, DOCKER_LIST])
async def test_index_with_missing_child(client: Client, media_type: str) -> None:
    present, missing = image("present"), image("missing")
    await push_manifest(client, REPO, present.digest, present)
    for b in missing.blobs:
        await push_blob(client, REPO, b)
    m = index([present, missing], media_type=media_type)
    err = await error_of(await put(client, "multi", m.body, media_type), 400, "MANIFEST_UNKNOWN")
    assert missing.digest in json.dumps(err)
    await error_of(await client.get(f"/v2/{REPO}/manifests/multi"), 404, "MANIFEST_UNKNOWN")


async def test_index_child_in_another_repository_is_missing(client: Client) -> None:
    child = image("child")
    await push_manifest(client, "other", "v1", child)
    m = index([child])
    await error_of(await put(client, "multi", m.body, OCI_INDEX), 400, "MANIFEST_UNKNOWN")


@pytest.mark.parametrize("missing", ["config", "layer"])
async def test_missing_blob(client: Client, missing: str) -> None:
    m = image("blobs", layers=2)
    skip = m.blobs[0] if missing == "config" else m.blobs[2]
    for b in m.blobs:
        if b is not skip:
            await push_blob(client, REPO, b)
    err = await error_of(await put(client, "v1", m.body), 400, "MANIFEST_BLOB_UNKNOWN")
    assert skip.digest in json.dumps(err)
    await error_of(await client.get(f"/v2/{REPO}/manifests/v1"), 404, "MANIFEST_UNKNOWN")


async def test_blob_of_another_repository_does_not_count(client: Client) -> None:
    m = image()
    for b in m.blobs:
        await push_blob(client, "other", b)
    await error_of(await put(client, "v1", m.body), 400, "MANIFEST_BLOB_UNKNOWN")


async def test_foreign_layers_need_not_be_present(client: Client) -> None:
    cfg = config("foreign")
    await push_blob(client, REPO, cfg)
    foreign = {"mediaType": "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
               "digest": digest(b"elsewhere"), "size": 9,
               "urls": ["https://example.com/layer"]}
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                       "config": cfg.descriptor(), "layers": [foreign]}).encode()
    assert (await put(client, "v1", body)).status == 201


def _doc(**change: Any) -> bytes:
    doc: dict[str, Any] = json.loads(image("schema").body)
    for key, value in change.items():
        if value is None:
            doc.pop(key, None)
        else:
            doc[key] = value
    return json.dumps(doc).encode()


def _layer_with(**change: Any) -> bytes:
    doc = json.loads(image("schema").body)
    for key, value in change.items():
        if value is None:
            del doc["layers"][0][key]
        else:
            doc["layers"][0][key] = value
    return json.dumps(doc).encode()


INVALID_BODIES = {
    "not-json": b"not json at all",
    "empty": b"",
    "truncated": image("schema").body[:-1],
    "array": b"[]",
    "string": b'"manifest"',
    "not-utf8": b'{"schemaVersion": 2, "x": "\xff\xfe"}',
    "deep-nesting": b"[" * 100_000 + b"]" * 100_000,
    "deep-object": b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    "huge-int": b'{"schemaVersion": 2, "n": 1' + b"0" * 5000 + b"}",
    "nan-size": _layer_with(size=float("nan")),
    "no-config": _doc(config=None),
    "no-layers": _doc(layers=None),
    "no-schema-version": _doc(schemaVersion=None),
    "schema-version-3": _doc(schemaVersion=3),
    "config-not-object": _doc(config="sha256:abc"),
    "layers-not-array": _doc(layers={}),
    "negative-size": _layer_with(size=-1),
    "string-size": _layer_with(size="12"),
    "float-size": _layer_with(size=1.5),
    "bad-digest": _layer_with(digest="sha256:1234"),
    "bad-digest-algorithm": _layer_with(digest="md5:" + "0" * 32),
    "no-digest": _layer_with(digest=None),
    "no-media-type": _layer_with(mediaType=None),
    "bad-media-type": _layer_with(mediaType="not a media type"),
    "annotation-not-string": _doc(annotations={"a": 1}),
    "bad-subject": _doc(subject={"mediaType": OCI_MANIFEST, "digest": "sha256:x", "size": 1}),
}


@pytest.mark.parametrize("body", list(INVALID_BODIES.values()), ids=list(INVALID_BODIES))
async def test_invalid_manifest(client: Client, body: bytes) -> None:
    for b in image("schema").blobs:
        await push_blob(client, REPO, b)
    err = await error_of(await put(client, "v1", body), 400, "MANIFEST_INVALID")
    assert err["message"] != ""
    await error_of(await client.get(f"/v2/{REPO}/manifests/v1"), 404, "MANIFEST_UNKNOWN")


async def test_invalid_index(client: Client) -> None:
    child = image("child")
    await push_manifest(client, REPO, child.digest, child)
    doc = json.loads(index([child]).body)
    doc["manifests"][0]["size"] = -5
    await error_of(await put(client, "v1", json.dumps(doc).encode(), OCI_INDEX),
                   400, "MANIFEST_INVALID")
    doc = json.loads(index([child]).body)
    del doc["manifests"]
    await error_of(await put(client, "v1", json.dumps(doc).encode(), OCI_INDEX),
                   400, "MANIFEST_INVALID")


@pytest.mark.parametrize(("content_type", "media_type"), [
    (OCI_MANIFEST, DOCKER_MANIFEST),
    (DOCKER_MANIFEST, OCI_MANIFEST),
    (OCI_INDEX, OCI_MANIFEST),
    (OCI_MANIFEST, OCI_INDEX),
    ("text/plain", OCI_MANIFEST),
    ("application/vnd.oci.image.config.v1+json", OCI_MANIFEST),
])
async def test_content_type_must_match_media_type(client: Client, content_type: str,
                                                  media_type: str) -> None:
    m = image("ct")
    for b in m.blobs:
        await push_blob(client, REPO, b)
    doc = json.loads(m.body)
    doc["mediaType"] = media_type
    await error_of(await put(client, "v1", json.dumps(doc).encode(), content_type),
                   400, "MANIFEST_INVALID")


async def test_docker_manifest_must_carry_its_media_type(client: Client) -> None:
    m = docker_image()
    for b in m.blobs:
        await push_blob(client, REPO, b)
    doc = json.loads(m.body)
    del doc["mediaType"]
    await error_of(await put(client, "v1", json.dumps(doc).encode(), DOCKER_MANIFEST),
                   400, "MANIFEST_INVALID")


@pytest.mark.parametrize("content_type", [None, "application/json", OCI_MANIFEST])
async def test_media_type_from_body_or_header(client: Client, content_type: str | None) -> None:
    """Without a specific Content-Type, the body's mediaType decides."""
    m = image()
    for b in m.blobs:
        await push_blob(client, REPO, b)
    resp = await put(client, "v1", m.body, content_type)
    assert resp.status == 201, await resp.text()
    resp = await client.get(f"/v2/{REPO}/manifests/v1")
    assert resp.headers["Content-Type"] == OCI_MANIFEST


async def test_content_type_parameters_are_ignored(client: Client) -> None:
    m = image()
    for b in m.blobs:
        await push_blob(client, REPO, b)
    resp = await put(client, "v1", m.body, OCI_MANIFEST + "; charset=utf-8")
    assert resp.status == 201, await resp.text()


SCHEMA1 = json.dumps({
    "schemaVersion": 1, "name": REPO, "tag": "v1", "architecture": "amd64",
    "fsLayers": [{"blobSum": digest(b"x")}], "history": [{"v1Compatibility": "{}"}],
    "signatures": [{"header": {"alg": "ES256"}, "signature": "abc", "protected": "def"}],
}, indent=3).encode()


@pytest.mark.parametrize("content_type", [
    DOCKER_SCHEMA1_SIGNED, "application/vnd.docker.distribution.manifest.v1+json",
    "application/json", None, OCI_MANIFEST])
async def test_schema1_is_refused_clearly(client: Client, content_type: str | None) -> None:
    err = await error_of(await put(client, "v1", SCHEMA1, content_type), 400, "MANIFEST_INVALID")
    assert "schema 1" in err["message"], err


async def test_manifest_size_limit(client: Client) -> None:
    m = image()
    for b in m.blobs:
        await push_blob(client, REPO, b)
    doc = json.loads(m.body)
    doc["annotations"] = {"pad": ""}
    base = len(json.dumps(doc).encode())
    doc["annotations"]["pad"] = "x" * (4 * MIB - base)
    exact = json.dumps(doc).encode()
    assert len(exact) == 4 * MIB
    resp = await put(client, "exact", exact)
    assert resp.status == 201, await resp.text()
    resp = await client.get(f"/v2/{REPO}/manifests/exact")
    assert await resp.read() == exact
    doc["annotations"]["pad"] += "x"
    over = json.dumps(doc).encode()
    await error_of(await put(client, "over", over), 413, "SIZE_INVALID")

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(over), MIB):
            yield over[i:i + MIB]

    resp = await client.put(f"/v2/{REPO}/manifests/over", data=chunks(),
                            headers={"Content-Type": OCI_MANIFEST})
    await error_of(resp, 413, "SIZE_INVALID")
    await error_of(await client.get(f"/v2/{REPO}/manifests/over"), 404, "MANIFEST_UNKNOWN")


async def test_stored_byte_for_byte(client: Client) -> None:
    m = image("bytes")
    for b in m.blobs:
        await push_blob(client, REPO, b)
    doc = json.loads(m.body)
    odd = ("\n\t {  \"layers\" :" + json.dumps(doc["layers"], indent=7)
           + ",\r\n\"config\":" + json.dumps(doc["config"])
           + ', "annotations": {"title": "caf\\u00e9 \u2603", "z": "", "a": "1"}'
           + ',"mediaType":"' + OCI_MANIFEST + '",   "schemaVersion" : 2.0e0 }\n\n').encode()
    odd = odd.replace(b"2.0e0", b"2")
    resp = await put(client, "odd", odd)
    assert resp.status == 201, await resp.text()
    expected = "sha256:" + hashlib.sha256(odd).hexdigest()
    assert resp.headers["Docker-Content-Digest"] == expected
    for ref in ("odd", expected):
        resp = await client.get(f"/v2/{REPO}/manifests/{ref}")
        assert await resp.read() == odd
        assert resp.headers["Docker-Content-Digest"] == expected


# -- pulling and deleting ---------------------------------------------------------------------
async def test_unknown_manifest(client: Client) -> None:
    await push_manifest(client, REPO, "v1", image())
    for ref in ("nope", digest(b"nope")):
        await error_of(await client.get(f"/v2/{REPO}/manifests/{ref}"), 404, "MANIFEST_UNKNOWN")
        resp = await client.head(f"/v2/{REPO}/manifests/{ref}")
        assert resp.status == 404 and await resp.read() == b""
        await error_of(await client.delete(f"/v2/{REPO}/manifests/{ref}"),
                       404, "MANIFEST_UNKNOWN")


async def test_unknown_repository(client: Client) -> None:
    await push_manifest(client, REPO, "v1", image())
    for ref in ("v1", image().digest):
        for method in ("GET", "DELETE"):
            resp = await client.request(method, f"/v2/no/such/repo/manifests/{ref}")
            await error_of(resp, 404, "NAME_UNKNOWN")
        resp = await client.head(f"/v2/no/such/repo/manifests/{ref}")
        assert resp.status == 404


async def test_manifest_of_another_repository_is_invisible(client: Client) -> None:
    m = image()
    await push_manifest(client, REPO, "v1", m)
    await push_manifest(client, "other", "v2", image("other"))
    for ref in ("v1", m.digest):
        await error_of(await client.get(f"/v2/other/manifests/{ref}"), 404, "MANIFEST_UNKNOWN")


async def test_delete_by_tag_removes_only_the_tag(client: Client) -> None:
    m = image()
    await push_manifest(client, REPO, "v1", m)
    await push_manifest(client, REPO, "v2", m)
    resp = await client.delete(f"/v2/{REPO}/manifests/v1")
    assert resp.status == 202
    await error_of(await client.get(f"/v2/{REPO}/manifests/v1"), 404, "MANIFEST_UNKNOWN")
    await assert_manifest(client, m.digest, m)
    await assert_manifest(client, "v2", m)
    assert await tags(client) == ["v2"]
    await error_of(await client.delete(f"/v2/{REPO}/manifests/v1"), 404, "MANIFEST_UNKNOWN")


async def test_delete_by_digest_removes_manifest_and_its_tags(client: Client) -> None:
    m, keep = image("gone"), image("kept")
    await push_manifest(client, REPO, "a", m)
    await push_manifest(client, REPO, "b", m)
    await push_manifest(client, REPO, "c", keep)
    resp = await client.delete(f"/v2/{REPO}/manifests/{m.digest}")
    assert resp.status == 202
    for ref in ("a", "b", m.digest):
        await error_of(await client.get(f"/v2/{REPO}/manifests/{ref}"), 404, "MANIFEST_UNKNOWN")
    assert await tags(client) == ["c"]
    await assert_manifest(client, "c", keep)
    # Its blobs stay (garbage collection decides about them).
    resp = await client.head(f"/v2/{REPO}/blobs/{m.blobs[1].digest}")
    assert resp.status == 200
    # It can be pushed again.
    await push_manifest(client, REPO, "a", m, blobs=False)
    await assert_manifest(client, "a", m)


async def test_delete_with_malformed_digest(client: Client) -> None:
    await push_manifest(client, REPO, "v1", image())
    await error_of(await client.delete(f"/v2/{REPO}/manifests/sha256:abc"), 404,
                   "MANIFEST_UNKNOWN")
    await error_of(await client.get(f"/v2/{REPO}/manifests/sha256:abc"), 404, "MANIFEST_UNKNOWN")
    await error_of(await client.put(f"/v2/{REPO}/manifests/sha256:abc", data=b"{}"), 400,
                   "DIGEST_INVALID")


# -- the cap on references ------------------------------------------------------------------
async def test_references_beyond_the_cap_are_refused_naming_it(aiohttp_client: Any,
                                                               make_app: Any) -> None:
    from strata.registry.limits import Limits

    assert Limits().max_manifest_references == 10_000
    client = await aiohttp_client(make_app(Limits(max_manifest_references=3)))
    ok = image("three", layers=2)  # config + 2 layers: 2 listed layers
    await push_manifest(client, "cap/a", "ok", ok)
    over = image("four", layers=4)
    for blob in over.blobs:
        await push_blob(client, "cap/a", blob)
    resp = await client.put("/v2/cap/a/manifests/over", data=over.body,
                            headers={"Content-Type": over.media_type})
    err = await error_of(resp, 400, "MANIFEST_INVALID")
    assert "4 layers" in err["message"] and "at most 3 references" in err["message"]
    assert err["detail"] == {"references": 4, "limit": 3}
    # An index is capped on its manifests.
    children = [image(f"c{i}") for i in range(4)]
    for child in children:
        await push_manifest(client, "cap/a", child.digest, child)
    big = index(children)
    resp = await client.put("/v2/cap/a/manifests/idx", data=big.body,
                            headers={"Content-Type": big.media_type})
    err = await error_of(resp, 400, "MANIFEST_INVALID")
    assert "4 manifests" in err["message"]
    assert (await client.get("/v2/cap/a/manifests/over")).status == 404
    resp = await push_manifest(client, "cap/a", "idx3", index(children[:3]), blobs=False)
    assert resp.status == 201


async def test_a_big_manifest_is_decoded_off_the_loop(client: Client,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A manifest over 64 KiB is parsed on the service's decoding thread, and stored whole."""
    import threading

    import strata.registry.manifests as service_module

    seen: list[str] = []
    real = service_module.parse_manifest

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(service_module, "parse_manifest", spy)
    small = image("small")
    await push_manifest(client, "big/a", "small", small)
    doc = json.loads(small.body)
    doc["layers"] = [doc["layers"][0]] * 1000  # ~150 KiB, one distinct layer
    body = json.dumps(doc).encode()
    assert len(body) > service_module.INLINE_MANIFEST_BYTES
    resp = await client.put("/v2/big/a/manifests/big", data=body,
                            headers={"Content-Type": small.media_type})
    assert resp.status == 201, await resp.text()
    assert seen[0] == threading.current_thread().name  # the small one: on the loop
    assert seen[1].startswith("manifest-decode")
    got = await client.get("/v2/big/a/manifests/big")
    assert await got.read() == body
