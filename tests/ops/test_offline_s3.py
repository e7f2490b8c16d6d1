"""Offline commands on PostgreSQL + S3 never act on the wrong place: a ``--blob-store`` whose
bucket does not exist, whose credentials are refused, or whose prefix holds none of the blobs
the database knows is refused with one line, and nothing is created -- no object in any
bucket, no local directory, no row changed (``gc`` would otherwise collect against an empty
prefix, ``scrub`` report every blob missing). A database with no strata schema is refused
likewise. Real PostgreSQL and ``rclone serve s3``."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from strata.cli.main import cli
from strata.meta.database import Database
from strata.meta.registry_store import RegistryStore
from strata.meta.scrub_store import SqlScrubStore
from strata.oci.digest import Digest
from strata.oci.names import RepositoryName
from strata.registry.service import Registry
from strata.storage.s3 import S3BlobStore, S3Location
from support.postgres import PostgresCluster
from support.s3 import RcloneS3

COMMANDS = [["scrub"], ["scrub", "--quick"], ["gc", "--dry-run"], ["gc", "--grace", "0"]]


def strata(s3: RcloneS3, *args: str, secret: str | None = None) -> Result:
    env = {"AWS_ACCESS_KEY_ID": s3.access_key,
           "AWS_SECRET_ACCESS_KEY": secret or s3.secret_key, "STRATA_BLOB_STORE": None}
    return CliRunner(env=env).invoke(cli, list(args))  # type: ignore[arg-type]


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


async def _once(body: bytes) -> AsyncIterator[bytes]:
    yield body


async def push_blob(url: str, blob_store: str, s3: RcloneS3, spool: Path) -> str:
    """One blob pushed through the registry onto PostgreSQL + S3 (what a server does)."""
    db = Database(url)
    store = S3BlobStore(S3Location.parse(blob_store, access_key=s3.access_key,
                                         secret_key=s3.secret_key), spool)
    try:
        registry = Registry.build(RegistryStore(db), store)
        repo = RepositoryName.parse("ops/x")
        body = b"a blob the database knows " + uuid.uuid4().bytes
        digest = Digest.of(body)
        session = await registry.uploads.start(repo)
        await registry.uploads.finish(repo, session.id, digest, _once(body), len(body))
        return str(digest)
    finally:
        await store.close()
        db.close()


def blob_rows(url: str) -> list[tuple[str, int]]:
    db = Database(url)
    try:
        return asyncio.run(SqlScrubStore(db).blobs_after("", 100))
    finally:
        db.close()


@pytest.fixture
def registry_on_s3(tmp_path: Path, postgres: PostgresCluster, s3_server: RcloneS3
                   ) -> tuple[str, str]:
    """(database URL, blob store URL) of a registry holding one blob."""
    name = f"ops_s3_{uuid.uuid4().hex[:10]}"
    url = postgres.create_database(name)
    good = s3_server.url(f"{name}/")
    init = strata(s3_server, "init", "--data", str(tmp_path / "node"), "--database-url", url,
                  "--blob-store", good)
    assert init.exit_code == 0, init.stderr
    asyncio.run(push_blob(url, good, s3_server, tmp_path / "spool"))
    return url, good


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_a_wrong_bucket_or_prefix_is_refused_and_nothing_created(
        tmp_path: Path, s3_server: RcloneS3, registry_on_s3: tuple[str, str],
        args: list[str]) -> None:
    url, good = registry_on_s3
    rows = blob_rows(url)
    assert len(rows) == 1
    before = tree(s3_server.data_dir)
    elsewhere = tmp_path / "elsewhere"  # a node's data dir that does not exist yet
    endpoint = good.split("?", 1)[1]
    wrong = {
        "prefix": (s3_server.url("typo/"), "no strata blobs in s3://"),
        "bucket": (f"s3://no-such-bucket/{good.split('/')[3]}/?{endpoint}", "no bucket"),
        "credentials": (good, "denied"),
    }
    for what, (blob_store, says) in wrong.items():
        result = strata(s3_server, *args, "--data", str(elsewhere), "--database-url", url,
                        "--blob-store", blob_store,
                        secret="wrong" if what == "credentials" else None)
        assert result.exit_code == 1, (what, result.stdout, result.stderr)
        last = result.stderr.splitlines()[-1]
        assert last.startswith("strata: error: --blob-store") or last.startswith(
            "strata: error: no strata blobs"), (what, result.stderr)
        assert says in last, (what, result.stderr)
        assert "Traceback" not in result.stderr and result.stdout == ""
        assert not elsewhere.exists(), what  # no spool directory made
        assert tree(s3_server.data_dir) == before, what  # no object, no bucket made
        assert blob_rows(url) == rows, what  # gc removed nothing
    # The right place: the same command works.
    result = strata(s3_server, *args, "--data", str(elsewhere), "--database-url", url,
                    "--blob-store", good)
    assert result.exit_code == 0, result.stderr


def test_an_empty_prefix_is_fine_for_a_registry_with_no_blob(
        tmp_path: Path, postgres: PostgresCluster, s3_server: RcloneS3) -> None:
    url = postgres.create_database(f"ops_s3_{uuid.uuid4().hex[:10]}")
    fresh = s3_server.url(f"fresh{uuid.uuid4().hex[:6]}/")
    assert strata(s3_server, "init", "--data", str(tmp_path / "d"), "--database-url", url,
                  "--blob-store", fresh).exit_code == 0
    for args in COMMANDS:
        result = strata(s3_server, *args, "--data", str(tmp_path / "d"), "--database-url", url,
                        "--blob-store", fresh)
        assert result.exit_code == 0, (args, result.stderr)


def test_a_database_with_no_strata_schema_is_refused_with_s3(
        tmp_path: Path, postgres: PostgresCluster, s3_server: RcloneS3) -> None:
    name = f"ops_s3_none_{uuid.uuid4().hex[:8]}"
    url = postgres.create_database(name)
    before = tree(s3_server.data_dir)
    data = tmp_path / "data"
    for args in COMMANDS:
        result = strata(s3_server, *args, "--data", str(data), "--database-url", url,
                        "--blob-store", s3_server.url("p/"))
        assert result.exit_code == 1, (args, result.stderr)
        assert "no strata data in postgresql" in result.stderr.splitlines()[-1]
        assert "Traceback" not in result.stderr
    with postgres.connect(name) as conn:
        tables = conn.execute("SELECT count(*) FROM information_schema.tables "
                              "WHERE table_schema = 'public'").fetchone()
    assert tables == (0,)
    assert not data.exists() and tree(s3_server.data_dir) == before
