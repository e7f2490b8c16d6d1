"""Offline commands never act on the wrong place (issue 17).

A data dir or database that holds no strata data is refused with one line and nothing
created; every command says on stderr which data dir and database it acts on; ``scrub`` and
``gc --dry-run`` open the database read-only and never migrate it (an older schema is refused
with a pointer to ``strata init``)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from click.testing import CliRunner, Result

from strata.cli.main import cli
from strata.meta import connection as meta_connection
from support.postgres import PostgresCluster

PASSWORD = "a-long-enough-password\n"

# Every offline command that takes --data (and --database-url).
OFFLINE = [
    ["scrub"], ["scrub", "--quick"], ["gc"], ["gc", "--dry-run"],
    ["user", "add", "alice", "--role", "releng", "--password-stdin"],
    ["user", "passwd", "alice", "--password-stdin"],
    ["user", "roles", "alice", "--role", "releng"],
    ["user", "disable", "alice"], ["user", "enable", "alice"], ["user", "list"],
    ["robot", "add", "ci"], ["robot", "revoke", "ci"],
    ["auth", "keys"], ["auth", "rotate-keys"],
]


def strata(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner(env=env).invoke(cli, list(args), input=PASSWORD)


def init(data: Path, *extra: str) -> None:
    result = strata("init", "--data", str(data), *extra)
    assert result.exit_code == 0, result.stderr


def stamp(path: Path) -> tuple[bytes, int]:
    return path.read_bytes(), path.stat().st_mtime_ns


@pytest.mark.parametrize("args", OFFLINE, ids=" ".join)
@pytest.mark.parametrize("place", ["absent", "empty"])
def test_a_dir_with_no_strata_data_is_refused_and_nothing_created(
        tmp_path: Path, args: list[str], place: str) -> None:
    data = tmp_path / "typo"
    if place == "empty":
        data.mkdir()
    result = strata(*args, "--data", str(data))
    assert result.exit_code == 1, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("strata: error: "), result.stderr
    assert f"no strata data in {data}" in lines[0] and "strata init" in lines[0]
    assert result.stdout == ""
    if place == "absent":
        assert not data.exists()
    else:
        assert list(data.iterdir()) == []


@pytest.mark.parametrize("args", [["user", "add", "bob", "--role", "releng",
                                   "--password-stdin"], ["scrub"]], ids=" ".join)
def test_without_data_the_default_dir_is_refused_too(tmp_path: Path, args: list[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("STRATA_DATA", raising=False)
    result = strata(*args)
    assert result.exit_code == 1
    assert f"no strata data in {tmp_path / 'var'}" in result.stderr
    assert list(tmp_path.iterdir()) == []  # no ./var made


def test_commands_say_which_data_dir_and_database_they_act_on(tmp_path: Path) -> None:
    data = tmp_path / "data"
    init(data)
    db = data / "strata.db"
    added = strata("user", "add", "alice", "--role", "releng", "--password-stdin",
                   "--data", str(data))
    assert added.exit_code == 0, added.stderr
    assert f"strata: acting on data dir {data}, database sqlite:///{db}\n" in added.stderr
    scrubbed = strata("scrub", "--data", str(data))
    assert scrubbed.exit_code == 0, scrubbed.stderr
    assert f"acting on data dir {data}, database sqlite:///{db} (read-only)" in scrubbed.stderr
    by_env = strata("user", "list", env={"STRATA_DATA": str(data)})
    assert by_env.exit_code == 0 and "alice" in by_env.stdout
    assert f"acting on data dir {data}," in by_env.stderr


def test_scrub_and_gc_dry_run_change_no_byte_of_the_database(tmp_path: Path) -> None:
    data = tmp_path / "data"
    init(data)
    assert strata("user", "add", "alice", "--role", "releng", "--password-stdin",
                  "--data", str(data)).exit_code == 0
    db = data / "strata.db"
    before = stamp(db)
    for args in (["scrub"], ["scrub", "--quick"], ["gc", "--dry-run"],
                 ["gc", "--dry-run", "--grace", "0"]):
        result = strata(*args, "--data", str(data))
        assert result.exit_code == 0, (args, result.stderr)
        assert stamp(db) == before, args
    ran = strata("gc", "--data", str(data), "--grace", "0")  # the real one may write
    assert ran.exit_code == 0, ran.stderr


def migrate_to(db: Path, revision: str) -> None:
    """A database as an older strata left it: the migrations up to ``revision`` only."""
    cfg = Config()
    cfg.set_main_option("script_location",
                        str(Path(meta_connection.__file__).parent / "migrations"))
    engine = meta_connection.create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    engine.dispose()


def test_an_older_schema_is_refused_by_the_read_only_commands(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    (data / "blobs").mkdir(mode=0o700)
    db = data / "strata.db"
    migrate_to(db, "0005")
    before = stamp(db)
    for args in (["scrub"], ["gc", "--dry-run"]):
        result = strata(*args, "--data", str(data))
        assert result.exit_code == 1, result.stderr
        assert "schema" in result.stderr and "older" in result.stderr
        assert "strata init" in result.stderr and "Traceback" not in result.stderr
        assert stamp(db) == before
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [("0005",)]
    init(data)  # upgrades it
    assert strata("scrub", "--data", str(data)).exit_code == 0


def test_a_schema_from_a_newer_strata_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    init(data)
    with sqlite3.connect(data / "strata.db") as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999' "
                     "WHERE version_num = (SELECT MAX(version_num) FROM alembic_version)")
    for args in (["scrub"], ["user", "list"]):
        result = strata(*args, "--data", str(data))
        assert result.exit_code == 1 and "newer strata" in result.stderr, result.stderr


def test_a_database_with_no_strata_schema_is_refused(tmp_path: Path,
                                                     postgres: PostgresCluster) -> None:
    url = postgres.create_database("ops_not_strata")
    data = tmp_path / "data"
    for args in (["user", "list"], ["gc", "--dry-run", "--blob-store", "s3://b/p"]):
        result = strata(*args, "--data", str(data), "--database-url", url)
        assert result.exit_code == 1, result.stderr
        assert "no strata data in postgresql" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    with postgres.connect("ops_not_strata") as conn:
        tables = conn.execute("SELECT count(*) FROM information_schema.tables "
                              "WHERE table_schema = 'public'").fetchone()
    assert tables == (0,)
    assert not data.exists()
    init(data, "--database-url", url)
    listed = strata("user", "list", "--data", str(data), "--database-url", url)
    assert listed.exit_code == 0, listed.stderr
    assert "(read-only)" not in listed.stderr and "ops_not_strata" in listed.stderr
    # The read-only commands on PostgreSQL: read-only sessions, and they still work.
    for args in (["scrub"], ["gc", "--dry-run", "--grace", "0"]):
        result = strata(*args, "--data", str(data), "--database-url", url)
        assert result.exit_code == 0, (args, result.stderr)
    with postgres.connect("ops_not_strata") as conn:
        conn.execute("DROP TABLE alembic_version")
        conn.execute("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)")
        conn.execute("INSERT INTO alembic_version VALUES ('0005')")
    result = strata("scrub", "--data", str(data), "--database-url", url)
    assert result.exit_code == 1 and "older" in result.stderr, result.stderr


def test_an_unreachable_or_malformed_database_url_is_one_line(tmp_path: Path) -> None:
    for url in ("postgresql+psycopg://nobody@127.0.0.1:1/strata", "notadb://x"):
        result = strata("user", "list", "--data", str(tmp_path), "--database-url", url)
        assert result.exit_code == 1, result.stderr
        lines = result.stderr.splitlines()
        assert lines[-1].startswith("strata: error: cannot open the database"), result.stderr
        assert "Traceback" not in result.stderr
    assert os.listdir(tmp_path) == []
