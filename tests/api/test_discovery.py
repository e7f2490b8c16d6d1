"""Tag listing, the catalog and referrers (distribution-spec "Content Discovery")."""

from __future__ import annotations

import re
from typing import Any

import pytest

from .helpers import Client, error_of, push_blob, push_manifest
from .oci_fixtures import (
    DOCKER_CONFIG,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_MANIFEST,
    artifact,
    digest,
    image,
    index,
)

REPO = "lib/app"
LINK = re.compile(r'^<([^>]+)>; rel="next"$')


async def tag_many(client: Client, names: list[str], repo: str = REPO) -> None:
    """Point every name at one manifest (one PUT, ``?tag=`` repeated)."""
    m = image("tagged")
    for b in m.blobs:
        await push_blob(client, repo, b)
    query = "&".join(f"tag={n}" for n in names)
    resp = await client.put(f"/v2/{repo}/manifests/{m.digest}?{query}", data=m.body,
                            headers={"Content-Type": m.media_type})
    assert resp.status == 201, await resp.text()


async def get_page(client: Client, url: str) -> tuple[dict[str, Any], str | None]:
    resp = await client.get(url)
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "application/json"
    link = resp.headers.get("Link")
    nxt = None
    if link is not None:
        m = LINK.match(link)
        assert m is not None, link
        nxt = m.group(1)
    doc: dict[str, Any] = await resp.json()
    return doc, nxt


# -- tags -----------------------------------------------------------------------------------
async def test_walk_250_tags_in_pages_of_100(client: Client) -> None:
    names = [f"t{i}" for i in range(240)] + ["A", "Z", "_u", "a", "z", "0", "9", "v1.0",
                                             "v1.0-1", "v1.0.1"]
    assert len(names) == 250
    await tag_many(client, names)
    pages: list[list[str]] = []
    url: str | None = f"/v2/{REPO}/tags/list?n=100"
    while url is not None:
        doc, url = await get_page(client, url)
        assert doc["name"] == REPO
        pages.append(doc["tags"])
    assert [len(p) for p in pages] == [100, 100, 50]
    walked = [t for p in pages for t in p]
    assert walked == sorted(names)  # lexical (ASCII) order, e.g. t1 < t10 < t100 < t2
    doc, nxt = await get_page(client, f"/v2/{REPO}/tags/list")
    assert doc["tags"] == sorted(names) and nxt is None


async def test_link_header_form(client: Client) -> None:
    await tag_many(client, ["a", "b", "c"])
    resp = await client.get(f"/v2/{REPO}/tags/list", params={"n": "2"})
    assert (await resp.json())["tags"] == ["a", "b"]
    assert resp.headers["Link"] == f'</v2/{REPO}/tags/list?n=2&last=b>; rel="next"'


@pytest.mark.parametrize(("query", "expected", "more"), [
    ("n=3", ["a", "b", "c"], False),          # exactly all: no Link
    ("n=4", ["a", "b", "c"], False),
    ("n=1", ["a"], True),
    ("last=a", ["b", "c"], False),            # last without n
    ("n=1&last=a", ["b"], True),
    ("n=5&last=c", [], False),
    ("last=bb", ["c"], False),                # last need not be a tag
    ("last=", ["a", "b", "c"], False),
    ("n=", ["a", "b", "c"], False),
])
async def test_tags_n_and_last(client: Client, query: str, expected: list[str],
                               more: bool) -> None:
    await tag_many(client, ["c", "a", "b"])
    doc, nxt = await get_page(client, f"/v2/{REPO}/tags/list?{query}")
    assert doc == {"name": REPO, "tags": expected}
    assert (nxt is not None) == more


async def test_n_zero_is_an_empty_list_without_link(client: Client) -> None:
    await tag_many(client, ["a", "b"])
    resp = await client.get(f"/v2/{REPO}/tags/list", params={"n": "0"})
    assert resp.status == 200
    assert await resp.json() == {"name": REPO, "tags": []}
    assert "Link" not in resp.headers


async def test_n_is_capped_not_refused(client: Client) -> None:
    await tag_many(client, ["a", "b"])
    for n in ("100000000", "9" * 5000):
        doc, nxt = await get_page(client, f"/v2/{REPO}/tags/list?n={n}")
        assert doc["tags"] == ["a", "b"] and nxt is None


@pytest.mark.parametrize("n", ["-1", "abc", "1.5", "1e3", "%C2%B2", "%D9%A3", " 1", "0x10"])
@pytest.mark.parametrize("path", [f"/v2/{REPO}/tags/list", "/v2/_catalog"])
async def test_bad_n_is_400(client: Client, path: str, n: str) -> None:
    await tag_many(client, ["a"])
    resp = await client.get(f"{path}?n={n}")
    assert resp.status == 400
    err = await error_of(resp, 400, "INVALID")
    assert "n" in err["detail"]


async def test_tags_of_unknown_repository(client: Client) -> None:
    await tag_many(client, ["a"])
    for query in ("", "?n=0", "?n=10&last=a"):
        await error_of(await client.get(f"/v2/no/such/tags/list{query}"), 404, "NAME_UNKNOWN")


async def test_repository_without_tags_lists_none(client: Client) -> None:
    await push_blob(client, REPO, b"just a blob")
    doc, nxt = await get_page(client, f"/v2/{REPO}/tags/list")
    assert doc == {"name": REPO, "tags": []} and nxt is None


async def test_tags_are_per_repository(client: Client) -> None:
    await tag_many(client, ["a", "b"])
    await tag_many(client, ["x"], repo="lib/other")
    assert (await get_page(client, f"/v2/{REPO}/tags/list"))[0]["tags"] == ["a", "b"]
    assert (await get_page(client, "/v2/lib/other/tags/list"))[0]["tags"] == ["x"]


# -- catalog --------------------------------------------------------------------------------
async def test_catalog(client: Client) -> None:
    doc, nxt = await get_page(client, "/v2/_catalog")
    assert doc == {"repositories": []} and nxt is None
    repos = ["b", "a/z", "a", "c/d/e", "a-b", "lib/app"]
    for repo in repos:
        await push_manifest(client, repo, "v1", image(repo))
    doc, nxt = await get_page(client, "/v2/_catalog")
    assert doc["repositories"] == sorted(repos) and nxt is None
    walked: list[str] = []
    url: str | None = "/v2/_catalog?n=4"
    sizes = []
    while url is not None:
        doc, url = await get_page(client, url)
        walked += doc["repositories"]
        sizes.append(len(doc["repositories"]))
    assert walked == sorted(repos) and sizes == [4, 2]
    resp = await client.get("/v2/_catalog", params={"n": "0"})
    assert await resp.json() == {"repositories": []} and "Link" not in resp.headers
    doc, nxt = await get_page(client, "/v2/_catalog?last=a-b")
    assert doc["repositories"] == ["a/z", "b", "c/d/e", "lib/app"]


async def test_catalog_link_header_form(client: Client) -> None:
    for repo in ("a/b", "c"):
        await push_blob(client, repo, b"x")
    resp = await client.get("/v2/_catalog", params={"n": "1"})
    assert (await resp.json())["repositories"] == ["a/b"]
    assert resp.headers["Link"] == '</v2/_catalog?n=1&last=a%2Fb>; rel="next"'
    doc, nxt = await get_page(client, LINK.match(resp.headers["Link"]).group(1))  # type: ignore[union-attr]
    assert doc["repositories"] == ["c"] and nxt is None


# -- referrers ------------------------------------------------------------------------------
async def get_referrers(client: Client, subject: str, repo: str = REPO,
                        **params: str) -> tuple[list[dict[str, Any]], Any]:
    resp = await client.get(f"/v2/{repo}/referrers/{subject}", params=params or None)
    assert resp.status == 200, await resp.text()
    assert resp.content_type == OCI_INDEX
    doc = await resp.json(content_type=None)
    assert doc["schemaVersion"] == 2 and doc["mediaType"] == OCI_INDEX
    manifests: list[dict[str, Any]] = doc["manifests"]
    return manifests, resp.headers


async def test_no_referrers_is_an_empty_index(client: Client) -> None:
    subject = image()
    await push_manifest(client, REPO, "v1", subject)
    for d in (subject.digest, digest(b"never pushed")):
        manifests, headers = await get_referrers(client, d)
        assert manifests == []
        assert "OCI-Filters-Applied" not in headers


async def test_referrers_of_unknown_repository(client: Client) -> None:
    """A registry with the referrers API must not answer 404 to it; strata answers empty."""
    manifests, _ = await get_referrers(client, digest(b"x"), repo="no/such/repo")
    assert manifests == []


async def test_referrers_lists_manifests_with_that_subject(client: Client) -> None:
    subject, unrelated = image("subject"), image("unrelated")
    await push_manifest(client, REPO, "v1", subject)
    await push_manifest(client, REPO, "v2", unrelated)
    sbom = artifact("application/vnd.example.sbom.v1", subject,
                    annotations={"org.opencontainers.image.created": "2024-01-01T00:00:00Z",
                                 "org.example.format": "spdx"})
    sig = artifact("application/vnd.example.sig.v1", subject, payload=b"signature")
    # An image manifest with a subject and no artifactType: the config's media type.
    plain = image("plain", subject=subject)
    docker_cfg = image("dockercfg", subject=subject,
                       cfg=image("x", media_type="application/vnd.docker.distribution.manifest"
                                 ".v2+json").blobs[0])
    child = image("child")
    await push_manifest(client, REPO, child.digest, child)
    idx_typed = index([child], subject=subject, artifact_type="application/vnd.example.bundle",
                      annotations={"k": "v"})
    idx_plain = index([child], subject=subject)
    other_subject = artifact("application/vnd.example.sbom.v1", unrelated)
    for m in (sbom, sig, plain, docker_cfg, other_subject):
        await push_manifest(client, REPO, m.digest, m)
    for m in (idx_typed, idx_plain):
        await push_manifest(client, REPO, m.digest, m, blobs=False)

    manifests, headers = await get_referrers(client, subject.digest)
    assert "OCI-Filters-Applied" not in headers
    by_digest = {d["digest"]: d for d in manifests}
    assert set(by_digest) == {m.digest for m in (sbom, sig, plain, docker_cfg, idx_typed,
                                                 idx_plain)}
    assert by_digest[sbom.digest] == {
        "mediaType": OCI_MANIFEST, "digest": sbom.digest, "size": len(sbom.body),
        "artifactType": "application/vnd.example.sbom.v1",
        "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z",
                        "org.example.format": "spdx"}}
    assert by_digest[sig.digest] == {
        "mediaType": OCI_MANIFEST, "digest": sig.digest, "size": len(sig.body),
        "artifactType": "application/vnd.example.sig.v1"}
    assert by_digest[plain.digest]["artifactType"] == OCI_CONFIG
    assert by_digest[docker_cfg.digest]["artifactType"] == DOCKER_CONFIG
    assert by_digest[idx_typed.digest] == {
        "mediaType": OCI_INDEX, "digest": idx_typed.digest, "size": len(idx_typed.body),
        "artifactType": "application/vnd.example.bundle", "annotations": {"k": "v"}}
    assert "artifactType" not in by_digest[idx_plain.digest]
    assert by_digest[idx_plain.digest]["mediaType"] == OCI_INDEX

    # Filtered.
    manifests, headers = await get_referrers(client, subject.digest,
                                             artifactType="application/vnd.example.sbom.v1")
    assert headers["OCI-Filters-Applied"] == "artifactType"
    assert [d["digest"] for d in manifests] == [sbom.digest]
    manifests, headers = await get_referrers(client, subject.digest,
                                             artifactType="application/vnd.example.none")
    assert manifests == [] and headers["OCI-Filters-Applied"] == "artifactType"

    # Another repository does not see them; a deleted referrer is gone.
    await push_manifest(client, "other", "v1", subject)
    assert (await get_referrers(client, subject.digest, repo="other"))[0] == []
    assert (await client.delete(f"/v2/{REPO}/manifests/{sig.digest}")).status == 202
    manifests, _ = await get_referrers(client, subject.digest)
    assert sig.digest not in {d["digest"] for d in manifests} and len(manifests) == 5


@pytest.mark.parametrize("bad", ["sha256:abc", "notadigest", "md5:" + "0" * 32,
                                 "sha256:" + "G" * 64])
async def test_referrers_with_invalid_digest(client: Client, bad: str) -> None:
    await push_manifest(client, REPO, "v1", image())
    await error_of(await client.get(f"/v2/{REPO}/referrers/{bad}"), 400, "DIGEST_INVALID")


async def test_referrers_of_a_docker_config_typed_manifest(client: Client) -> None:
    """The descriptor's artifactType is the config's mediaType when artifactType is absent."""
    subject = image("s")
    await push_manifest(client, REPO, "v1", subject)
    m = image("d", subject=subject, cfg=image("c", media_type="application/vnd.docker."
                                                 "distribution.manifest.v2+json").blobs[0])
    await push_manifest(client, REPO, m.digest, m)
    manifests, _ = await get_referrers(client, subject.digest,
                                       artifactType=DOCKER_CONFIG)
    assert [d["digest"] for d in manifests] == [m.digest]


# -- referrers in pages -----------------------------------------------------------------------
async def push_referrers(client: Client, subject: Any, count: int) -> dict[str, str]:
    """``count`` artifacts on ``subject`` (artifact types alternating a/b): digest -> type."""
    made = {}
    for i in range(count):
        kind = "application/vnd.example.a" if i % 2 == 0 else "application/vnd.example.b"
        m = artifact(kind, subject, payload=f"sig{i}".encode())
        await push_manifest(client, REPO, m.digest, m)
        made[m.digest] = kind
    return made


async def walk_referrers(client: Client, url: str) -> tuple[list[str], list[str]]:
    """Follow ``Link`` from ``url``: (digests in order, the URLs fetched)."""
    digests: list[str] = []
    urls: list[str] = []
    nxt: str | None = url
    while nxt is not None:
        urls.append(nxt)
        resp = await client.get(nxt)
        assert resp.status == 200, await resp.text()
        assert resp.content_type == OCI_INDEX
        doc = await resp.json(content_type=None)
        assert doc["schemaVersion"] == 2 and doc["mediaType"] == OCI_INDEX
        digests += [d["digest"] for d in doc["manifests"]]
        link = resp.headers.get("Link")
        if link is None:
            nxt = None
        else:
            m = LINK.match(link)
            assert m is not None, link
            nxt = m.group(1)
            assert nxt.startswith(f"/v2/{REPO}/referrers/")
        assert len(urls) < 50
    return digests, urls


async def test_referrers_are_paged_with_n_and_link(client: Client) -> None:
    subject = image("paged")
    await push_manifest(client, REPO, "v1", subject)
    made = await push_referrers(client, subject, 25)
    digests, urls = await walk_referrers(client, f"/v2/{REPO}/referrers/{subject.digest}?n=10")
    assert digests == sorted(made)  # every referrer once, in digest order
    assert len(urls) == 3  # 10 + 10 + 5
    assert "n=10" in urls[1] and f"last={sorted(made)[9]}".replace(":", "%3A") in urls[1]
    # A page exactly at the end has no Link.
    resp = await client.get(f"/v2/{REPO}/referrers/{subject.digest}?n=25")
    assert "Link" not in resp.headers
    assert len((await resp.json(content_type=None))["manifests"]) == 25
    # n=0: an empty index, no Link.
    resp = await client.get(f"/v2/{REPO}/referrers/{subject.digest}?n=0")
    assert (await resp.json(content_type=None))["manifests"] == [] and "Link" not in resp.headers


async def test_referrer_pages_keep_the_artifact_type_filter(client: Client) -> None:
    subject = image("filtered")
    await push_manifest(client, REPO, "v1", subject)
    made = await push_referrers(client, subject, 15)
    kind = "application/vnd.example.b"
    digests, urls = await walk_referrers(
        client, f"/v2/{REPO}/referrers/{subject.digest}?n=3&artifactType={kind}")
    assert digests == sorted(d for d, k in made.items() if k == kind)  # 7 of them
    assert len(urls) == 3
    for url in urls[1:]:
        assert "artifactType=application%2Fvnd.example.b" in url
        resp = await client.get(url)
        assert resp.headers["OCI-Filters-Applied"] == "artifactType"


async def test_referrers_have_a_default_page_size(aiohttp_client: Any, make_app: Any) -> None:
    """Without ``n`` a page holds ``Limits.referrers_page`` descriptors (1000 by default), so
    thousands of artifacts on one image are not one answer; ``n`` above ``max_page`` is capped."""
    from strata.registry.limits import Limits

    assert Limits().referrers_page == 1000
    client = await aiohttp_client(make_app(Limits(referrers_page=4, max_page=6)))
    subject = image("default")
    await push_manifest(client, REPO, "v1", subject)
    made = await push_referrers(client, subject, 9)
    digests, urls = await walk_referrers(client, f"/v2/{REPO}/referrers/{subject.digest}")
    assert digests == sorted(made) and len(urls) == 3  # 4 + 4 + 1
    assert "n=4" in urls[1]
    digests, urls = await walk_referrers(client, f"/v2/{REPO}/referrers/{subject.digest}?n=100")
    assert digests == sorted(made) and len(urls) == 2  # capped at 6: 6 + 3


@pytest.mark.parametrize("query", ["n=-1", "n=x", "last=notadigest"])
async def test_bad_referrers_paging_is_400(client: Client, query: str) -> None:
    subject = image("bad")
    await push_manifest(client, REPO, "v1", subject)
    resp = await client.get(f"/v2/{REPO}/referrers/{subject.digest}?{query}")
    assert resp.status == 400, await resp.text()


async def test_the_client_gathers_every_referrers_page(aiohttp_client: Any,
                                                      make_app: Any) -> None:
    """``RegistryClient.referrers`` (the CLI's client) follows ``Link`` to every page."""
    from strata.client.registry import RegistryClient
    from strata.registry.limits import Limits

    client = await aiohttp_client(make_app(Limits(referrers_page=4)))
    subject = image("client")
    await push_manifest(client, REPO, "v1", subject)
    made = await push_referrers(client, subject, 9)
    oci = RegistryClient(str(client.make_url("")), client.session)
    index = await oci.referrers(REPO, subject.digest)
    assert index["mediaType"] == OCI_INDEX
    assert [d["digest"] for d in index["manifests"]] == sorted(made)
    typed = await oci.referrers(REPO, subject.digest, "application/vnd.example.a")
    assert [d["digest"] for d in typed["manifests"]] == sorted(
        d for d, k in made.items() if k == "application/vnd.example.a")
