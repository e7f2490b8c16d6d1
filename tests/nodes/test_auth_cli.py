"""``strata auth keys|rotate-keys|new-secret-key`` offline, on a data dir (in-process)."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

from click.testing import CliRunner

from strata.auth.secretbox import SecretBox
from strata.cli.main import cli


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_new_secret_key_is_private_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "etc" / "secret-key"
    code, _out, err = run("auth", "new-secret-key", str(path))
    assert code == 0 and "give every node this file as --secret-key-file" in err
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = path.read_bytes()
    assert SecretBox.load(path).key_id in err
    code, _out, err = run("auth", "new-secret-key", str(path))
    assert code == 1 and "exists already" in err and path.read_bytes() == key


def test_keys_refuse_a_directory_without_strata_data(tmp_path: Path) -> None:
    for command in (["keys"], ["rotate-keys"]):
        code, _out, err = run("auth", *command, "--data", str(tmp_path / "typo"))
        assert code == 1 and "no strata data in" in err, err
    assert not (tmp_path / "typo").exists()


def test_rotate_and_list_on_a_data_dir(tmp_path: Path, migrated_sqlite: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    shutil.copyfile(migrated_sqlite, data / "strata.db")
    code, out, _err = run("auth", "keys", "--data", str(data))
    assert code == 0 and "no signing key yet" in out
    # no secret key yet: refused, nothing created
    code, _out, err = run("auth", "rotate-keys", "--data", str(data))
    assert code == 1 and "no secret key" in err and not (data / "auth").exists()
    key = tmp_path / "secret-key"
    assert run("auth", "new-secret-key", str(key))[0] == 0
    code, _out, err = run("auth", "rotate-keys", "--data", str(data), "--secret-key-file",
                          str(key))
    assert code == 1 and "holds no token-signing key yet" in err  # strata serve makes it
