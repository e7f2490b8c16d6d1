"""oras (the Python SDK, ``oras.client.OrasClient``) against a real ``strata serve``: push
artifacts made of files (monolithic and chunked uploads), pull them back, attach a referrer."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from interop_checks import OCI_INDEX, OCI_MANIFEST, get_blob, get_manifest

from support.clients import missing, sha256_digest
from support.server import StrataServer

pytestmark = pytest.mark.interop

TITLE = "org.opencontainers.image.title"


def oras_client(registry: StrataServer, *, login: bool = True) -> Any:
    """An ``OrasClient`` for the plain-HTTP registry; with ``login``, the admin's credentials
    (set on the client only: ``OrasClient.login`` would write a Docker config file)."""
    try:
        import oras.client
    except ImportError:
        missing("the oras Python SDK is not importable",
                "install the PyPI package 'oras' (the test extra)")
        raise
    client = oras.client.OrasClient(hostname=registry.host_port, insecure=True)
    if login:
        client.auth.set_basic_auth(registry.admin_user, registry.admin_password)
    return client


@pytest.fixture
def artifact_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with two files (oras pushes paths relative to it)."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "readme.txt").write_text("strata interop artifact\n")
    (work / "data.bin").write_bytes(os.urandom(3 << 20) + b"\x00end")  # a taken body
    monkeypatch.chdir(work)
    return work


def check_pulled(files: list[str], source: Path) -> None:
    assert sorted(Path(f).name for f in files) == ["data.bin", "readme.txt"]
    for name in files:
        assert Path(name).read_bytes() == (source / Path(name).name).read_bytes()


def test_push_and_pull_files(registry: StrataServer, artifact_dir: Path, tmp_path: Path) -> None:
    client = oras_client(registry)
    target = f"{registry.host_port}/oras/files:v1"
    resp = client.push(target=target, files=["readme.txt", "data.bin:application/x-strata-data"],
                       manifest_annotations={"org.example.kind": "interop"}, quiet=True)
    assert resp.status_code == 201
    pushed = resp.headers["Docker-Content-Digest"]

    manifest = get_manifest(registry, "oras/files", "v1")
    assert manifest.header("Docker-Content-Digest") == pushed == sha256_digest(manifest.body)
    assert manifest.header("Content-Type") == OCI_MANIFEST
    doc = json.loads(manifest.body)
    assert doc["annotations"] == {"org.example.kind": "interop"}
    layers = {layer["annotations"][TITLE]: layer for layer in doc["layers"]}
    assert layers["data.bin"]["mediaType"] == "application/x-strata-data"
    for name, layer in layers.items():
        content = (artifact_dir / name).read_bytes()
        assert layer["digest"] == sha256_digest(content)
        assert layer["size"] == len(content)
        assert get_blob(registry, "oras/files", layer["digest"]) == content
    assert client.get_tags(f"{registry.host_port}/oras/files") == ["v1"]

    # Anyone may pull: a client without credentials gets an anonymous token.
    anonymous = oras_client(registry, login=False)
    assert anonymous.get_manifest(target) == doc
    files = anonymous.pull(target=target, outdir=str(tmp_path / "pulled"))
    check_pulled(files, artifact_dir)


def test_chunked_push(registry: StrataServer, artifact_dir: Path, tmp_path: Path) -> None:
    client = oras_client(registry)
    target = f"{registry.host_port}/oras/chunked:v1"
    resp = client.push(target=target, files=["readme.txt", "data.bin"], do_chunked=True,
                       chunk_size=8192, quiet=True)
    assert resp.status_code == 201
    doc = json.loads(get_manifest(registry, "oras/chunked", "v1").body)
    for layer in doc["layers"]:
        assert get_blob(registry, "oras/chunked", layer["digest"]) == \
            (artifact_dir / layer["annotations"][TITLE]).read_bytes()
    # The same client moves on to another repository: its token does not cover that one,
    # so it must be refused with a challenge it can answer (a fresh token).
    other = f"{registry.host_port}/oras/chunked-other:v1"
    client.push(target=other, files=["readme.txt", "data.bin"], do_chunked=True,
                chunk_size=20_000, quiet=True)
    check_pulled(client.pull(target=target, outdir=str(tmp_path / "pulled")), artifact_dir)
    check_pulled(client.pull(target=other, outdir=str(tmp_path / "other")), artifact_dir)


def test_referrer(registry: StrataServer, artifact_dir: Path) -> None:
    import oras.oci

    client = oras_client(registry)
    repo = f"{registry.host_port}/oras/referred"
    client.push(target=f"{repo}:v1", files=["data.bin"], quiet=True)
    subject_resp = get_manifest(registry, "oras/referred", "v1")
    subject = oras.oci.Subject(mediaType=OCI_MANIFEST,
                               digest=subject_resp.header("Docker-Content-Digest"),
                               size=len(subject_resp.body))
    resp = client.push(target=f"{repo}:sbom", files=["readme.txt"], subject=subject, quiet=True)
    assert resp.status_code == 201
    assert resp.headers.get("OCI-Subject") == subject.digest
    referrer = resp.headers["Docker-Content-Digest"]

    index = registry.request("GET", f"/v2/oras/referred/referrers/{subject.digest}",
                             headers=registry.admin_headers)
    assert index.status == 200
    assert index.header("Content-Type") == OCI_INDEX
    descriptors = json.loads(index.body)["manifests"]
    assert [d["digest"] for d in descriptors] == [referrer]


def test_referrers_in_pages(registry: StrataServer, artifact_dir: Path) -> None:
    """Five referrers pushed by oras, listed two per page: oras's own pagination follows the
    registry's relative ``Link`` header (``rel="next"``) to every page, with the filter."""
    import oras.oci

    client = oras_client(registry)
    repo = f"{registry.host_port}/oras/paged"
    client.push(target=f"{repo}:v1", files=["data.bin"], quiet=True)
    subject_resp = get_manifest(registry, "oras/paged", "v1")
    subject = oras.oci.Subject(mediaType=OCI_MANIFEST,
                               digest=subject_resp.header("Docker-Content-Digest"),
                               size=len(subject_resp.body))
    referrers = []
    for i in range(5):
        resp = client.push(target=f"{repo}:sig{i}", files=["readme.txt"], subject=subject,
                           manifest_annotations={"org.example.n": str(i)}, quiet=True)
        assert resp.status_code == 201
        referrers.append(resp.headers["Docker-Content-Digest"])

    def walk(query: str) -> tuple[list[str], int]:
        pages: list[list[str]] = []

        def take(response: Any) -> bool:
            assert response.headers["Content-Type"] == OCI_INDEX
            pages.append([d["digest"] for d in response.json()["manifests"]])
            return True

        client._do_paginated_request(
            f"http://{registry.host_port}/v2/oras/paged/referrers/{subject.digest}?{query}",
            callable=take)
        return [d for page in pages for d in page], len(pages)

    assert walk("n=2") == (sorted(referrers), 3)
    assert walk("") == (sorted(referrers), 1)  # the default page (1000) holds them all
    index = registry.request("GET", f"/v2/oras/paged/referrers/{subject.digest}")
    kinds = {d["artifactType"] for d in json.loads(index.body)["manifests"]}
    assert len(kinds) == 1, kinds  # oras's default (its config's media type)
    digests, pages = walk(f"n=2&artifactType={quote(kinds.pop(), safe='')}")
    assert digests == sorted(referrers) and pages == 3
