"""``strata verify`` end to end: a real ``strata serve`` with release signing, images built
from git with the jailed builder, released, then verified (signature, signed provenance,
rebuild, digest) -- and refused when the tag was moved behind the release's back, with
another key, when the source commit is gone, and when a RUN is not deterministic.

Needs root and user namespaces for the RUN jail (like tests/build; skipped elsewhere, failing
in CI)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "build"))

from build_support import (
    BASE,
    BASE_VERSION,
    DIST_TAG,
    NAMESPACE,
    Strata,
    git,
    labels_block,
    make_rootfs,
    sandbox_available,
    write_context,
)

from strata.cli.build_cmds import basic_auth
from strata.client.registry import RegistryClient
from strata.meta.connection import sqlite_url
from strata.meta.database import Database
from strata.meta.key_store import KeyStore
from strata.trust import cosign
from strata.trust.provenance import PROVENANCE_ARTIFACT_TYPE
from strata.trust.sbom import SBOM_ARTIFACT_TYPE
from support.server import StrataServer

IMAGES = ("vgood", "vgone", "vrandom")
SIGNATURE_ARTIFACT_TYPE = "application/vnd.dev.cosign.artifact.sig.v1+json"
WHEN = {"GIT_AUTHOR_DATE": "2022-03-04T05:06:07Z", "GIT_COMMITTER_DATE": "2022-03-04T05:06:07Z",
        "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@x"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StrataServer]:
    with StrataServer(tmp_path_factory.mktemp("verify-server"),
                      env={"STRATA_SIGNING_PASSPHRASE": "verify tests passphrase"}) as srv:
        yield srv


@pytest.fixture(scope="module")
def strata(server: StrataServer, tmp_path_factory: pytest.TempPathFactory) -> Strata:
    sandbox_available()
    cache = tmp_path_factory.mktemp("verify-cache")
    tool = Strata(server, {
        "STRATA_URL": server.url, "STRATA_USER": server.admin_user,
        "STRATA_PASSWORD": server.admin_password, "STRATA_BUILD_CACHE": str(cache)})
    result = tool("namespace", "add", NAMESPACE, "--dist-tag", DIST_TAG)
    assert result.exit_code == 0, result.output
    for name in IMAGES:
        result = tool("image", "add", f"{NAMESPACE}/{name}", "--reason", "verify tests")
        assert result.exit_code == 0, result.output
    tarball = make_rootfs(tmp_path_factory.mktemp("rootfs"))
    base = tool.json("base", "import", str(tarball), "--name", BASE, "--version", BASE_VERSION,
                     "--namespace", NAMESPACE)
    tool.json("release", "oob", f"{BASE}@{base['digest']}", "--advisory", "V-BASE",
              "--reason", "the verify tests' base")
    return tool


def _git_source(root: Path, name: str, run: str) -> tuple[Path, str]:
    repo = write_context(root, f"""
        FROM {BASE}:{BASE_VERSION}
        {labels_block(name)}
        ARG GREETING=hello
        COPY app.sh /usr/local/bin/app.sh
        RUN {run}
        CMD ["/usr/local/bin/app.sh"]
    """, {"app.sh": "#!/bin/sh\necho app\n", "help.md": "help\n"})
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "one", env=WHEN)
    return repo, git(repo, "rev-parse", "HEAD")


def _release(strata: Strata, root: Path, name: str, run: str) -> tuple[dict[str, Any], Path]:
    repo, _ = _git_source(root, name, run)
    built = strata.build(f"file://{repo}", "--ref", "main", "--build-arg", "GREETING=hi")
    strata.json("release", "oob", f"{built['repository']}@{built['digest']}",
                "--advisory", f"V-{name}", "--reason", "verify tests")
    return built, repo


def _verify(strata: Strata, ref: str, *args: str) -> tuple[int, str]:
    result = strata("verify", "-q", ref, *args)
    return result.exit_code, result.stdout


def _lines(output: str) -> dict[str, str]:
    return {line.split()[0]: line.split()[1] for line in output.splitlines()
            if line and line.split()[0] in ("signature", "provenance", "rebuild", "digest")}


@pytest.fixture(scope="module")
def good(strata: Strata, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    built, _ = _release(strata, tmp_path_factory.mktemp("good") / "repo", "vgood",
                        "echo $GREETING > /greeting")
    return built


def test_a_good_release_verifies(strata: Strata, good: dict[str, Any]) -> None:
    repo = good["repository"]
    referrers = strata.get_json(f"/v2/{repo}/referrers/{good['digest']}")
    types = sorted(m.get("artifactType", "") for m in referrers["manifests"])
    assert SBOM_ARTIFACT_TYPE in types and PROVENANCE_ARTIFACT_TYPE in types
    for item in referrers["manifests"]:
        if item.get("artifactType") in (SBOM_ARTIFACT_TYPE, PROVENANCE_ARTIFACT_TYPE):
            signed = strata.get_json(f"/v2/{repo}/referrers/{item['digest']}")
            assert [m["artifactType"] for m in signed["manifests"]] == [SIGNATURE_ARTIFACT_TYPE]

    code, out = _verify(strata, f"{repo}:1")
    assert code == 0, out
    assert _lines(out) == {"signature": "PASS", "provenance": "PASS", "rebuild": "PASS",
                           "digest": "PASS"}, out
    assert f"VERIFIED: {repo}@{good['digest']}" in out
    data = json.loads(strata("verify", "--json", f"{strata.server.host_port}/{repo}:1").stdout)
    assert data["verified"] is True and data["rebuilt_digest"] == good["digest"]


def _point_tag(strata: Strata, repo: str, tag: str, digest: str) -> None:
    """What an attacker with database access does: move a tag without the release."""
    db = sqlite3.connect(strata.server.data_dir / "strata.db")
    try:
        with db:
            moved = db.execute(
                "UPDATE tags SET digest = ? WHERE name = ? AND repository_id = "
                "(SELECT id FROM repositories WHERE name = ?)", (digest, tag, repo))
            assert moved.rowcount == 1
    finally:
        db.close()


def test_a_tag_moved_behind_the_release_fails(strata: Strata, good: dict[str, Any],
                                              tmp_path: Path) -> None:
    """The tag is pointed at other content (pushed by digest, unsigned): the signature step
    fails and there is no signed provenance; with a signature the attacker made with a key of
    their own, the signature step still fails."""
    repo = good["repository"]
    other, _ = _git_source(tmp_path / "evil", "vgood", "echo evil > /evil")
    evil = strata.build(f"file://{other}", "--ref", "main", "--rebuild")  # a candidate only
    assert evil["digest"] != good["digest"]
    _point_tag(strata, repo, "1", evil["digest"])
    try:
        code, out = _verify(strata, f"{repo}:1")
        assert code == 1, out
        lines = _lines(out)
        assert lines["signature"] == "FAIL" and lines["provenance"] == "FAIL", out
        assert f"no signature of {evil['digest']}" in out
        assert f"NOT VERIFIED: {repo}@{evil['digest']}" in out
        _forge_signature(strata, repo, evil["digest"])
        code, out = _verify(strata, f"{repo}:1")
        assert code == 1, out
        assert _lines(out)["signature"] == "FAIL", out
        assert "does not verify with the namespace's keys" in out
    finally:
        _point_tag(strata, repo, "1", good["digest"])


def _forge_signature(strata: Strata, repo: str, digest: str) -> None:
    """An attacker with storage and database access stores a cosign signature of ``digest``
    made with a key of their own: the payload blob through ``/v2/``, the referrer manifest
    straight into the database."""
    server = strata.server
    payload = cosign.payload(f"{server.host_port}/{repo}", digest)
    der = ec.generate_private_key(ec.SECP256R1()).sign(payload, ec.ECDSA(hashes.SHA256()))
    subject = json.loads(strata.get(f"/v2/{repo}/manifests/{digest}"))
    forged = cosign.artifacts([cosign.Layer.of(payload, der)], {
        "mediaType": subject["mediaType"], "digest": digest,
        "size": len(strata.get(f"/v2/{repo}/manifests/{digest}"))})

    async def push() -> None:
        auth = basic_auth(server.admin_user, server.admin_password)
        async with aiohttp.ClientSession() as session:
            client = RegistryClient(server.url, session, auth=auth)
            for blob in (payload, cosign.EMPTY_CONFIG):
                await client.push_blob(repo, blob)
    asyncio.run(push())
    db = Database(sqlite_url(server.data_dir))
    try:
        db.write_sync(lambda conn, _batch: KeyStore.trust_writer(conn).put_manifest(
            repo, forged.referrer_manifest, time.time()))
    finally:
        db.close()


def test_another_key_fails(strata: Strata, good: dict[str, Any], tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    pem = tmp_path / "other.pub"
    pem.write_bytes(key.public_bytes(serialization.Encoding.PEM,
                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    code, out = _verify(strata, f"{good['repository']}:1", "--key", str(pem))
    assert code == 1, out
    lines = _lines(out)
    assert lines["signature"] == "FAIL" and lines["provenance"] == "FAIL", out
    assert "does not verify" in out
    namespace_key = strata.get(f"/keys/{NAMESPACE}.pub")
    pem.write_bytes(namespace_key)
    code, out = _verify(strata, f"{good['repository']}:1", "--key", str(pem))
    assert code == 0, out


def test_a_rewritten_source_commit_fails(strata: Strata, tmp_path: Path) -> None:
    built, repo = _release(strata, tmp_path / "repo", "vgone", "echo gone > /gone")
    git(repo, "commit", "-q", "--amend", "-m", "rewritten", env={
        **WHEN, "GIT_COMMITTER_DATE": "2023-01-01T00:00:00Z"})
    git(repo, "reflog", "expire", "--expire=now", "--all")
    git(repo, "gc", "-q", "--prune=now")
    code, out = _verify(strata, f"{built['repository']}@{built['digest']}")
    assert code == 1, out
    lines = _lines(out)
    assert lines == {"signature": "PASS", "provenance": "PASS", "rebuild": "FAIL",
                     "digest": "FAIL"}, out
    assert built["source"]["commit"] in out


def test_a_non_deterministic_run_fails(strata: Strata, tmp_path: Path) -> None:
    built, _ = _release(strata, tmp_path / "repo", "vrandom",
                        "cat /proc/sys/kernel/random/uuid > /random")
    code, out = _verify(strata, f"{built['repository']}:1")
    assert code == 1, out
    lines = _lines(out)
    assert lines == {"signature": "PASS", "provenance": "PASS", "rebuild": "PASS",
                     "digest": "FAIL"}, out
    assert f"the registry serves {built['digest']}" in out
