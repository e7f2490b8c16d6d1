"""The document describes real answers: after a release story (namespace, image, builds,
candidates, a scheduled and an out-of-band release, a rollback, an end of life, a webhook, a
build job), every documented GET answers 200 with a body valid against its declared schema."""

from __future__ import annotations

import re
from typing import Any

import aiohttp
from jsonschema import Draft202012Validator

from release.helpers import make_image
from strata.client.registry import RegistryClient

from .conftest import ADMIN, Client


async def ok(resp: aiohttp.ClientResponse, status: int = 200) -> Any:
    assert resp.status == status, (resp.method, resp.url, await resp.text())
    return await resp.json()


async def story(client: Client) -> dict[str, str]:
    """The values the path parameters take."""
    await ok(await client.post("/api/v1/namespaces", json={
        "name": "s25", "dist_tag": "s25docker", "anchor": "2025-06-10"}, headers=ADMIN), 201)
    await ok(await client.post("/api/v1/images", json={
        "repository": "s25/x", "maintainers": ["admin"],
        "source_url": "https://git.example/x.git", "source_branch": "s25"},
        headers=ADMIN), 201)
    # a token straight from /auth/token (the challenge's realm names the public URL, which
    # this in-process server does not listen on)
    token = (await ok(await client.get("/auth/token", params={
        "scope": "repository:s25/x:pull,push"}, headers=ADMIN)))["token"]
    oci = RegistryClient(str(client.make_url("")), client.session, tokens={"s25/x": token})
    digests = {}
    for version, release in (("129", "1.s25docker"), ("130", "1.s25docker"),
                             ("129", "2.s25docker")):
        image = make_image("x", version, release)
        digests[version, release] = await oci.push_image("s25/x", None, [image.layer],
                                                         image.config)
    for key in (("129", "1.s25docker"), ("130", "1.s25docker")):
        await ok(await client.post("/api/v1/candidates", json={
            "reference": f"s25/x@{digests[key]}", "source": {
                "url": "https://git.example/x.git", "commit": "a" * 40},
            "packages": [{"name": "bash", "version": "5.2-1", "arch": "x86_64"}]},
            headers=ADMIN), 201)
    scheduled = await ok(await client.post("/api/v1/releases/publish",
                                           json={"namespace": "s25"}, headers=ADMIN), 201)
    await ok(await client.post("/api/v1/releases/oob", json={
        "references": [f"s25/x@{digests['129', '2.s25docker']}"], "advisories": ["A-1"],
        "reason": "CVE"}, headers=ADMIN), 201)
    await ok(await client.post("/api/v1/rollback", json={
        "reference": "s25/x:129", "to": "129-1.s25docker", "reason": "regression"},
        headers=ADMIN))
    await ok(await client.post("/api/v1/images/s25/x/streams/129/eol", headers=ADMIN))
    await ok(await client.post("/api/v1/webhooks", json={"url": "https://hooks.example/h"},
                               headers=ADMIN), 201)
    job = await ok(await client.post("/api/v1/builds", json={"repository": "s25/x"},
                                     headers=ADMIN), 202)
    return {"ns": "s25", "version": "129", "tag": "129", "id": str(job["id"]),
            "release": scheduled["name"], "image": "x"}


QUERY_VALUES = {"name": "bash", "q": "x"}  # required query parameters


def validator(doc: dict[str, Any], schema: dict[str, Any]) -> Draft202012Validator:
    """``schema`` with the document's components beside it, so its references resolve."""
    return Draft202012Validator({**schema, "components": doc["components"]})


async def test_every_documented_read_answers_as_declared(client: Client) -> None:
    values = await story(client)
    doc = await ok(await client.get("/api/v1/openapi.json"))
    checked = []
    for path, item in doc["paths"].items():
        op = item.get("get")
        if op is None:
            continue
        if path.startswith("/api/v1/reviews/"):
            continue  # no review request in this story (tests/auth/test_reviews.py has them)
        names = {**values, "name": values["release"] if path.startswith("/api/v1/releases/")
                 else values["image"]}
        url = re.sub(r"\{(\w+)\}", lambda m, names=names: names[m.group(1)], path)
        required = {p["name"]: QUERY_VALUES[p["name"]] for p in op.get("parameters", [])
                    if p["in"] == "query" and p.get("required")}
        resp = await client.get(url, params=required, headers=ADMIN)
        assert resp.status == 200, (url, await resp.text())
        answer = op["responses"]["200"]["content"]
        if "application/json" not in answer:
            assert resp.content_type in answer, url
            continue
        body = await resp.json()
        errors = sorted(validator(doc, answer["application/json"]["schema"]).iter_errors(body),
                        key=str)
        assert not errors, (url, [e.message for e in errors[:5]])
        checked.append(path)
    assert len(checked) > 20, checked
    # and the check can fail: a release is not a namespace
    release = await ok(await client.get(f"/api/v1/releases/{values['release']}"))
    assert list(validator(doc, {"$ref": "#/components/schemas/Namespace"}).iter_errors(
        release))
