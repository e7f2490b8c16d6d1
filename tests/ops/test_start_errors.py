"""``strata serve`` ends with one clear line for every bad option or environment value (issue
17): no traceback, exit status non-zero, the line names the option or variable, and a start
that fails creates no data dir."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from strata.compose import build_store
from strata.config import ServerSettings
from strata.storage import direct
from strata.storage.filesystem import FilesystemBlobStore
from support.postgres import PostgresCluster
from support.server import strata_command


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


def serve(tmp: Path, *args: str, env: dict[str, str] | None = None
          ) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("STRATA_")}
    environ.update(env or {})
    return subprocess.run([*strata_command(), "serve", "--data", str(tmp / "data"),
                           "--listen", "127.0.0.1:0", "--workers", "1", *args],
                          capture_output=True, text=True, env=environ, timeout=120,
                          check=False)


def assert_one_line(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    line = lines[0]
    assert line.startswith("strata: error: "), line
    for needle in needles:
        assert needle in line, line
    return line


CASES = {
    "short admin password": ((), {"STRATA_ADMIN_PASSWORD": "short"},
                             ("$STRATA_ADMIN_PASSWORD", "at least 8 characters")),
    "malformed database URL": (("--database-url", "nosuchdb://x"), {},
                               ("--database-url", "bad database URL")),
    "unreachable database": (("--database-url", "postgresql+psycopg://strata@127.0.0.1:1/s"),
                             {}, ("cannot reach the database", "127.0.0.1")),
    "jail limit not a number": ((), {"STRATA_BUILD_RUN_MEMORY": "lots"},
                                ("$STRATA_BUILD_RUN_MEMORY", "not a number")),
    "jail limit not positive": ((), {"STRATA_BUILD_RUN_TIMEOUT": "-1"},
                                ("$STRATA_BUILD_RUN_TIMEOUT", "positive")),
    "interval not a number": ((), {"STRATA_SCHEDULER_INTERVAL": "soon"},
                              ("$STRATA_SCHEDULER_INTERVAL", "not a number")),
    "interval negative": ((), {"STRATA_BUILD_POLL": "-3"}, ("$STRATA_BUILD_POLL", "≥ 0")),
    "bad subid range": ((), {"STRATA_JAIL_SUBID": "12"}, ("$STRATA_JAIL_SUBID",)),
    "unresolvable listen host": (("--listen", "no-such-host.invalid:5000"), {},
                                 ("--listen", "cannot resolve")),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_value_is_one_line_and_nothing_is_created(tmp_path: Path, case: str) -> None:
    args, env, needles = CASES[case]
    assert_one_line(serve(tmp_path, *args, env=env), *needles)
    assert not (tmp_path / "data").exists()


def test_a_listen_address_in_use_is_one_line(tmp_path: Path, taken_port: int) -> None:
    assert_one_line(serve(tmp_path, "--listen", f"127.0.0.1:{taken_port}"),
                    f"--listen 127.0.0.1:{taken_port}", "in use")
    assert not (tmp_path / "data").exists()


def test_unusable_tls_files_are_one_line(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    assert_one_line(serve(tmp_path, "--tls-cert", str(junk), "--tls-key", str(junk)),
                    "--tls-cert", "cannot load")
    assert not (tmp_path / "data").exists()


def test_a_data_dir_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("")
    assert_one_line(serve(tmp_path), "--data", "not a directory")
    (tmp_path / "data").unlink()
    (tmp_path / "data").write_text("")
    proc = subprocess.run([*strata_command(), "serve", "--data", str(tmp_path / "data" / "x"),
                           "--listen", "127.0.0.1:0"], capture_output=True, text=True,
                          timeout=120, check=False)
    assert_one_line(proc, "--data", "is not a directory")


def test_a_database_of_a_newer_strata_is_one_line(tmp_path: Path,
                                                  postgres: PostgresCluster) -> None:
    url = postgres.create_database("ops_newer")
    with postgres.connect("ops_newer") as conn:
        conn.execute("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)")
        conn.execute("INSERT INTO alembic_version VALUES ('9999')")
    assert_one_line(serve(tmp_path, "--database-url", url), "newer strata")


@pytest.mark.parametrize(("option", "value"), [
    ("--gc-interval", "-5"), ("--gc-grace", "-1"), ("--upload-ttl", "0"),
    ("--body-timeout", "0"), ("--workers", "many"), ("--max-blob-size", "0"),
    ("--listen", "localhost"), ("--public-url", "registry.example/x"),
    ("--blob-store", "s3:/nope"), ("--s3-part-size", "1"),
])
def test_a_bad_option_is_a_usage_error_naming_it(tmp_path: Path, option: str,
                                                 value: str) -> None:
    proc = serve(tmp_path, option, value)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("Error: ")
    assert option in proc.stderr
    assert not (tmp_path / "data").exists()


def test_direct_io_with_an_s3_blob_store_is_one_line(tmp_path: Path) -> None:
    assert_one_line(serve(tmp_path, "--direct-io", "--blob-store",
                          "s3://bucket/prefix?endpoint=http://127.0.0.1:1"),
                    "--direct-io", "--blob-store")
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(("direct_io", "expected"), [(False, False), (None, False), (True, True)])
def test_the_store_writes_direct_as_settings_say(tmp_path: Path, direct_io: bool | None,
                                                 expected: bool) -> None:
    if not direct.supported(tmp_path):
        pytest.fail(f"{tmp_path}: this test needs a filesystem that takes O_DIRECT writes")
    settings = (ServerSettings(data_dir=tmp_path / "data") if direct_io is None  # the default
                else ServerSettings(data_dir=tmp_path / "data", direct_io=direct_io))
    store = build_store(settings)
    assert isinstance(store, FilesystemBlobStore)
    assert store.writes_direct is expected
