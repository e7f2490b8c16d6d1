"""Single-component repositories (base images at the root: ``f25``, ``fedora``) are images like
any other: candidates, plans, releases, streams, history, rollback, EOL, through /api/v1 and
/v2/ (in-process); and ``GET /api/v1/releases/<date>``."""

from __future__ import annotations

from typing import Any

import pytest

from strata.client.registry import ClientError
from strata.release.model import api_segments, parse_tag_ref, repository_from_segments

from .helpers import make_image
from .test_api import AUTH, Client, add, error, oci, ok, setup
from .test_api import client as client  # the fixtures of test_api
from .test_api import make_client as make_client


async def push_root(client: Client, repo: str, version: str, release: str, *,
                    salt: str = "", tag: str | None = None) -> str:
    image = make_image(repo, version, release, salt=salt)
    return await oci(client).push_image(repo, tag, [image.layer], image.config)


def test_one_parser_of_repositories() -> None:
    assert api_segments("f25") == ("_", "f25")
    assert api_segments("f25/cockpit") == ("f25", "cockpit")
    assert repository_from_segments("_", "fedora") == "fedora"
    assert repository_from_segments("f25", "cockpit") == "f25/cockpit"
    repo, tag = parse_tag_ref("f25:25")
    assert (repo.value, tag) == ("f25", "25")


async def test_root_repository_named_like_its_namespace(client: Client) -> None:
    """``f25`` (as ``strata base import --name f25`` makes it) in namespace ``f25``."""
    await setup(client)
    await ok(await client.post("/api/v1/images", json={"repository": "f25",
                                                       "reason": "base import"},
                               headers=AUTH), 201)
    d1 = await push_root(client, "f25", "25", "1.f25docker")
    build = await add(client, "f25", d1)
    assert build["repository"] == "f25" and build["nvr"] == "f25-25-1.f25docker"
    image = await ok(await client.get("/api/v1/images/_/f25"))
    assert image["namespace"] == "f25" and image["name"] == "f25"
    [plan] = (await ok(await client.get("/api/v1/plan")))["plans"]
    assert [i["repository"] for i in plan["images"]] == ["f25"]
    assert {m["tag"] for m in plan["images"][0]["moves"]} == {"25-1.f25docker", "25", "latest"}
    release = await ok(await client.post("/api/v1/releases/publish", json={}, headers=AUTH),
                       201)
    assert release["name"] == "f25-2025-06-10"
    assert release["builds"][0]["repository"] == "f25"
    assert "f25:latest" in release["notes_markdown"]
    tags = await oci(client).tags("f25")
    assert sorted(tags) == ["25", "25-1.f25docker", "latest"]
    # history of a root repository's tag, now and --at a time
    hist = await ok(await client.get("/api/v1/images/_/f25/tags/25/history"))
    assert [e["new_digest"] for e in hist["events"]] == [d1]
    assert hist["events"][0]["release"] == "f25-2025-06-10"
    at = hist["events"][0]["at_epoch"]
    then = await ok(await client.get("/api/v1/images/_/f25/tags/latest/history",
                                     params={"at": str(at)}))
    assert then["digest"] == d1 and then["nvr"] == "f25-25-1.f25docker"
    all_tags = await ok(await client.get("/api/v1/images/_/f25/history"))
    assert {e["tag"] for e in all_tags["events"]} == {"25-1.f25docker", "25", "latest"}
    streams = await ok(await client.get("/api/v1/images/_/f25/streams"))
    assert [s["version"] for s in streams["streams"]] == ["25"]
    shown = await ok(await client.get("/api/v1/images/_/f25"))
    assert {t["tag"]: t["nvr"] for t in shown["tags"]}["latest"] == "f25-25-1.f25docker"
    listed = await ok(await client.get("/api/v1/candidates", params={
        "repository": "f25", "status": "all"}))
    assert [b["status"] for b in listed["candidates"]] == ["released"]


async def test_root_repository_of_another_namespace(client: Client) -> None:
    """``fedora`` at the root, in namespace ``f25``: registered with its namespace."""
    await setup(client)
    d1 = await push_root(client, "fedora", "25", "1.f25docker")
    err = await error(await client.post("/api/v1/candidates", json={
        "reference": f"fedora@{d1}"}, headers=AUTH), 404, "NOT_FOUND")
    assert "--namespace" in err["message"]
    await error(await client.post("/api/v1/images", json={"repository": "fedora"},
                                  headers=AUTH), 404, "NOT_FOUND")
    await error(await client.post("/api/v1/images", json={
        "repository": "f25/fedora", "namespace": "f26"}, headers=AUTH), 400, "INVALID")
    await error(await client.post("/api/v1/images", json={
        "repository": "a/b/c", "namespace": "f25"}, headers=AUTH), 400, "INVALID")
    image = await ok(await client.post("/api/v1/images", json={
        "repository": "fedora", "namespace": "f25"}, headers=AUTH), 201)
    assert (image["repository"], image["namespace"], image["name"]) == ("fedora", "f25",
                                                                          "fedora")
    assert (await add(client, "fedora", d1))["nvr"] == "fedora-25-1.f25docker"
    # out of band: the namespace comes from the image row
    oob = await ok(await client.post("/api/v1/releases/oob", json={
        "references": [f"fedora@{d1}"], "advisories": ["FEDORA-2025-1"],
        "reason": "new base"}, headers=AUTH), 201)
    assert oob["namespace"] == "f25"
    assert sorted(await oci(client).tags("fedora")) == ["25", "25-1.f25docker", "latest"]
    d2 = await push_root(client, "fedora", "25", "2.f25docker")
    await add(client, "fedora", d2)
    await ok(await client.post("/api/v1/releases/publish", json={}, headers=AUTH), 201)
    assert (await oci(client).get_manifest("fedora", "latest")).digest == d2
    # rollback and end-of-life on the root repository
    event = await ok(await client.post("/api/v1/rollback", json={
        "reference": "fedora:latest", "to": "fedora-25-1.f25docker", "reason": "broken"},
        headers=AUTH))
    assert (event["old_digest"], event["new_digest"]) == (d2, d1)
    stream = await ok(await client.post("/api/v1/images/_/fedora/streams/25/eol",
                                        headers=AUTH))
    assert stream["repository"] == "fedora" and stream["eol"] is True
    listed = await ok(await client.get("/api/v1/images", params={"namespace": "f25"}))
    assert [i["repository"] for i in listed["images"]] == ["f25/x", "fedora"]  # f25/x: setup


async def test_root_base_is_protected_on_v2(client: Client) -> None:
    """Once registered, the base's stream tags move only by releases: an NVR overwrite, a
    move of ``latest`` and a DELETE of ``latest`` through /v2/ are refused (403 DENIED)."""
    await setup(client)
    await ok(await client.post("/api/v1/images", json={
        "repository": "fedora", "namespace": "f25"}, headers=AUTH), 201)
    d1 = await push_root(client, "fedora", "25", "1.f25docker")
    await add(client, "fedora", d1)
    await ok(await client.post("/api/v1/releases/publish", json={}, headers=AUTH), 201)
    other = await push_root(client, "fedora", "25", "1.f25docker", salt="evil")
    for tag in ("25-1.f25docker", "latest", "25"):
        with pytest.raises(ClientError) as refused:
            await push_root(client, "fedora", "25", "1.f25docker", salt="evil", tag=tag)
        assert (refused.value.status, refused.value.code) == (403, "DENIED"), tag
    resp = await client.delete("/v2/fedora/manifests/latest", headers=AUTH)
    await error(resp, 403, "DENIED")
    assert (await oci(client).get_manifest("fedora", "latest")).digest == d1
    assert other != d1


async def test_release_named_by_its_date(client: Client) -> None:
    await setup(client)
    await ok(await client.post("/api/v1/images", json={"repository": "f25",
                                                       "reason": "base import"},
                               headers=AUTH), 201)
    d1 = await push_root(client, "f25", "25", "1.f25docker")
    await add(client, "f25", d1)
    await ok(await client.post("/api/v1/releases/publish", json={}, headers=AUTH), 201)
    shown = await ok(await client.get("/api/v1/releases/2025-06-10"))
    assert shown["name"] == "f25-2025-06-10" and shown["builds"][0]["repository"] == "f25"
    notes = await client.get("/api/v1/releases/2025-06-10/notes.md")
    assert notes.status == 200 and "f25-2025-06-10" in await notes.text()
    await error(await client.get("/api/v1/releases/2025-06-24"), 404, "NOT_FOUND")
    # a second namespace released the same day: the date is ambiguous
    await ok(await client.post("/api/v1/namespaces", json={
        "name": "f26", "dist_tag": "f26docker", "anchor": "2025-06-10"}, headers=AUTH), 201)
    await ok(await client.post("/api/v1/images", json={"repository": "f26"}, headers=AUTH), 201)
    d2 = await push_root(client, "f26", "26", "1.f26docker")
    await add(client, "f26", d2)
    await ok(await client.post("/api/v1/releases/publish", json={"namespace": "f26"},
                               headers=AUTH), 201)
    err: dict[str, Any] = await error(await client.get("/api/v1/releases/2025-06-10"), 400,
                                      "INVALID")
    assert "f25-2025-06-10" in err["message"] and "f26-2025-06-10" in err["message"]
    assert err["detail"] == {"matches": ["f25-2025-06-10", "f26-2025-06-10"]}
    assert (await ok(await client.get("/api/v1/releases/f26-2025-06-10")))["namespace"] == "f26"
