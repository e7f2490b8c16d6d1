"""The RUN sandbox: namespaces, overlay, /proc and /dev, users, exit codes, no leftovers."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

import pytest
from build_support import APPLETS, GROUP, PASSWD, sandbox_available

from strata.build.errors import BuildError
from strata.build.sandbox import RunSpec, run_in_sandbox
from strata.image.layer import diff_tree
from support.clients import require_static_busybox


@pytest.fixture
def lower(tmp_path: Path) -> Path:
    sandbox_available()
    root = tmp_path / "lower"
    (root / "bin").mkdir(parents=True)
    (root / "etc").mkdir()
    (root / "data" / "sub").mkdir(parents=True)
    (root / "data" / "sub" / "file").write_text("x")
    (root / "data" / "other").write_text("y")
    shutil.copy2(require_static_busybox(), root / "bin" / "busybox")
    for applet in APPLETS:
        (root / "bin" / applet).symlink_to("busybox")
    (root / "etc" / "passwd").write_text(PASSWD)
    (root / "etc" / "group").write_text(GROUP)
    # an image's modes, whatever this process's umask (an in-process command of an earlier
    # test may have left it owner-only: then "app" could not enter /data nor read /etc/passwd)
    for path in (root, *root.rglob("*")):
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() or path.name == "busybox" else 0o644)
    return root


def run(lower: Path, step: Path, script: str, **kw: str) -> tuple[int, str, Path]:
    spec = RunSpec(("/bin/sh", "-c", script), ("PATH=/bin",), **kw)  # type: ignore[arg-type]
    result = run_in_sandbox([lower], step, spec)
    return result.exit_code, result.output.decode(), result.upper


def test_isolation(lower: Path, tmp_path: Path) -> None:
    code, out, upper = run(lower, tmp_path / "s1", "echo pid=$$; hostname; "
                           "ls /sys/class/net 2>/dev/null; ip -o link | wc -l; "
                           "test -c /dev/null && echo null-ok; head -c 4 /dev/zero | wc -c")
    assert code == 0, out
    assert out.split() == ["pid=2", "strata-build", "1", "null-ok", "4"]  # 1: sandbox init
    assert sorted(os.listdir(upper)) == []  # /proc and /dev mount points are not changes
    with open("/proc/self/mounts") as fh:
        assert str(tmp_path) not in fh.read()


def test_exit_code_output_and_user(lower: Path, tmp_path: Path) -> None:
    code, out, _ = run(lower, tmp_path / "s1", "echo out; echo err >&2; exit 42")
    assert (code, out) == (42, "out\nerr\n")
    code, out, _ = run(lower, tmp_path / "s2", "id; echo $HOME; pwd", user="app",
                       workdir="/data")
    assert code == 0
    assert out.splitlines() == ["uid=1000(app) gid=1000(app) groups=50(staff),1000(app)",
                                "/home/app", "/data"]
    with pytest.raises(BuildError, match="unknown user 'nosuchuser'"):
        run(lower, tmp_path / "s3", "true", user="nosuchuser")
    code, out, _ = run(lower, tmp_path / "s4", "exec /nonexistent")
    assert code == 127


def test_changes_become_a_layer_with_whiteouts(lower: Path, tmp_path: Path) -> None:
    code, out, upper = run(lower, tmp_path / "s1",
                           "rm /data/other && rm -r /data/sub && mkdir /data/sub && "
                           "echo new > /data/sub/new && echo added > /added")
    assert code == 0, out
    assert stat.S_ISCHR(os.lstat(upper / "data" / "other").st_mode)
    entries = {e.path: e for e in diff_tree([lower], upper, source_date_epoch=0)}
    assert sorted(entries) == ["added", "data", "data/.wh.other", "data/sub",
                               "data/sub/.wh..wh..opq", "data/sub/new"]
    assert all(e.mtime == 0 for e in entries.values())


def test_an_upper_directory_on_a_tmpfs_keeps_whiteouts(lower: Path) -> None:
    """Builds keep RUN directories in RAM (strata.build.scratch): the overlay's whiteouts and
    opaque directories must come out the same from an upper directory on /dev/shm."""
    with tempfile.TemporaryDirectory(prefix="strata-test-", dir="/dev/shm") as ram:
        code, out, upper = run(lower, Path(ram) / "s1",
                               "rm /data/other && rm -r /data/sub && mkdir /data/sub && "
                               "echo new > /data/sub/new")
        assert code == 0, out
        assert stat.S_ISCHR(os.lstat(upper / "data" / "other").st_mode)
        entries = {e.path for e in diff_tree([lower], upper, source_date_epoch=0)}
        assert sorted(entries) == ["data", "data/.wh.other", "data/sub",
                                   "data/sub/.wh..wh..opq", "data/sub/new"]
