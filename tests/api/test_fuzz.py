"""Generated bad input: manifests and upload sessions never get a 500 and never lose state.

Hypothesis builds manifest bodies out of the fields real manifests have (with values of every
JSON type, digests good and bad, references to blobs that exist and that do not) and sequences
of upload requests with arbitrary ranges, lengths and digests. Whatever the registry answers
must be a catalogue error or a success, and what it accepted must read back byte for byte.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yarl import URL

from strata.errors import Code

from .helpers import API_VERSION, Client, push_blob

KNOWN = b"known layer bytes"
KNOWN_DIGEST = "sha256:" + hashlib.sha256(KNOWN).hexdigest()
MEDIA_TYPES = [
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/json",
    "text/plain",
    "",
]
DIGESTS = st.sampled_from([
    KNOWN_DIGEST,
    "sha256:" + "0" * 64,
    "sha256:" + "A" * 64,
    "sha256:abc",
    "sha512:" + "1" * 128,
    "md5:" + "1" * 32,
    "sha256:" + "0" * 64 + "\x00",
    "",
])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                    st.floats(allow_nan=False, allow_infinity=False),
                    st.text(max_size=20), DIGESTS, st.sampled_from(MEDIA_TYPES))


def _descriptor() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"mediaType": st.sampled_from(MEDIA_TYPES), "digest": DIGESTS},
        optional={"size": st.one_of(st.just(len(KNOWN)), st.integers(-5, 2**65)),
                  "annotations": st.dictionaries(st.text(max_size=8), SCALARS, max_size=2),
                  "platform": st.dictionaries(st.sampled_from(["os", "architecture"]), SCALARS),
                  "artifactType": SCALARS, "urls": st.lists(SCALARS, max_size=2)})


ANY_JSON = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=8)
MANIFESTS = st.fixed_dictionaries(
    {},
    optional={
        "schemaVersion": st.one_of(st.just(2), SCALARS),
        "mediaType": st.sampled_from(MEDIA_TYPES),
        "config": st.one_of(_descriptor(), ANY_JSON),
        "layers": st.one_of(st.lists(_descriptor(), max_size=3), ANY_JSON),
        "manifests": st.one_of(st.lists(_descriptor(), max_size=3), ANY_JSON),
        "subject": st.one_of(_descriptor(), ANY_JSON),
        "annotations": ANY_JSON,
        "artifactType": SCALARS,
        "blobs": ANY_JSON,
    })
FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


async def _check_answer(resp: Any) -> bytes:
    raw: bytes = await resp.read()
    assert resp.status < 500, (resp.status, raw[:300])
    assert resp.headers.get(API_VERSION[0]) == API_VERSION[1]
    if resp.status >= 400 and resp.method != "HEAD":
        assert resp.content_type == "application/json", raw[:300]
        errors = json.loads(raw)["errors"]
        assert errors and all(e["code"] in Code.__members__ and e["message"] for e in errors)
    return raw


@FUZZ
@given(doc=MANIFESTS, content_type=st.sampled_from(MEDIA_TYPES),
       raw_tail=st.sampled_from([b"", b" ", b"\x00", b"}", b"\xff"]))
async def test_generated_manifests_get_an_answer_and_read_back_as_pushed(
        client: Client, doc: dict[str, Any], content_type: str, raw_tail: bytes) -> None:
    await push_blob(client, "fuzz/m", KNOWN)
    body = json.dumps(doc).encode() + raw_tail
    headers = {"Content-Type": content_type} if content_type else {}
    resp = await client.put("/v2/fuzz/m/manifests/t", data=body, headers=headers)
    await _check_answer(resp)
    if resp.status == 201:
        digest = resp.headers["Docker-Content-Digest"]
        assert digest == "sha256:" + hashlib.sha256(body).hexdigest()
        back = await client.get(f"/v2/fuzz/m/manifests/{digest}",
                                headers={"Accept": content_type or "*/*"})
        assert back.status == 200
        assert await back.read() == body
        assert (await client.delete(f"/v2/fuzz/m/manifests/{digest}")).status == 202


UPLOAD_STEPS = st.lists(st.one_of(
    st.tuples(st.just("patch"), st.binary(max_size=64),
              st.one_of(st.none(), st.tuples(st.integers(-3, 200), st.integers(-3, 200)),
                        st.text(st.characters(min_codepoint=32, max_codepoint=126),
                                max_size=12))),
    st.tuples(st.just("status")),
    st.tuples(st.just("put"), st.binary(max_size=16), st.booleans()),
    st.tuples(st.just("cancel")),
), min_size=1, max_size=6)


@FUZZ
@given(steps=UPLOAD_STEPS)
async def test_generated_upload_requests_keep_the_session_consistent(
        client: Client, steps: list[tuple[Any, ...]]) -> None:
    """A model of the session (the bytes it holds, whether it is open) follows each answer:
    a refused request changes nothing, an accepted one exactly what it says."""
    resp = await client.post("/v2/fuzz/u/blobs/uploads/")
    assert resp.status == 202
    location = resp.headers["Location"]
    held = b""
    open_ = True
    for step in steps:
        if step[0] == "patch":
            # (Content-Length stays true to the body: a false one is a framing error the
            # connection, not the session, pays for.)
            _, data, content_range = step
            headers = {"Content-Type": "application/octet-stream"}
            if isinstance(content_range, tuple):
                headers["Content-Range"] = f"{content_range[0]}-{content_range[1]}"
            elif content_range is not None:
                headers["Content-Range"] = content_range
            resp = await client.patch(URL(location, encoded=True), data=data, headers=headers)
            await _check_answer(resp)
            if resp.status == 202:
                assert open_
                held += data
                assert resp.headers["Range"] == f"0-{max(len(held) - 1, 0)}"
                location = resp.headers["Location"]
        elif step[0] == "status":
            resp = await client.get(URL(location, encoded=True))
            await _check_answer(resp)
            assert (resp.status == 204) == open_, resp.status
            if open_:
                assert resp.headers["Range"] == f"0-{max(len(held) - 1, 0)}"
        elif step[0] == "put":
            _, tail, right = step
            whole = held + tail
            digest = "sha256:" + hashlib.sha256(whole if right else whole + b"!").hexdigest()
            url = URL(location, encoded=True).update_query(digest=digest)
            resp = await client.put(url, data=tail,
                                    headers={"Content-Type": "application/octet-stream"})
            await _check_answer(resp)
            if resp.status == 201:
                assert open_ and right
                blob = await client.get(f"/v2/fuzz/u/blobs/{digest}")
                assert blob.status == 200 and await blob.read() == whole
            open_ = open_ and resp.status not in (201, 400)  # done, or dropped on a bad digest
        else:
            resp = await client.delete(URL(location, encoded=True))
            await _check_answer(resp)
            assert (resp.status == 204) == open_, resp.status
            open_ = False
