"""Pure parts of the builder: the merged filesystem view, COPY destinations, the label
policy and release numbers, package databases, image references."""

from __future__ import annotations

import os
import sqlite3
import stat
import struct
from pathlib import Path

import pytest

from strata.build import containerfile as cf
from strata.build.errors import BuildError
from strata.build.fsview import DirLayer, EntryLayer, MergedView
from strata.build.ignore import parse_ignore_file
from strata.build.labels import check_labels, next_release, own_labels
from strata.build.record import _rpm_header, os_packages
from strata.build.remote import parse_image_ref
from strata.build.transfer import ContextItem, ViewItem, transfer_entries
from strata.image.layer import data_entry, dir_entry, opaque_entry, symlink_entry, whiteout_entry

SDE = 1000


def lower_dir(tmp_path: Path) -> Path:
    root = tmp_path / "lower"
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "etc").mkdir()
    (root / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\napp:x:7:8::/h:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\nwheel:x:10:\n")
    (root / "usr" / "bin" / "tool").write_text("old")
    (root / "bin").symlink_to("usr/bin")
    (root / "tmp").mkdir(mode=0o1777)
    os.chmod(root / "tmp", 0o1777)
    (root / "data").mkdir()
    (root / "data" / "keep").write_text("k")
    (root / "data" / "drop").write_text("d")
    return root


def test_merged_view_follows_overlay_rules(tmp_path: Path) -> None:
    lower = DirLayer(lower_dir(tmp_path))
    upper_dir = tmp_path / "upper"
    (upper_dir / "data").mkdir(parents=True)
    os.mknod(upper_dir / "data" / "drop", stat.S_IFCHR | 0o600, os.makedev(0, 0))
    (upper_dir / "data" / "new").write_text("n")
    upper = DirLayer(upper_dir)
    top = EntryLayer([dir_entry("etc", mtime=0), opaque_entry("etc", mtime=0),
                      data_entry("etc/hostname", b"box", mtime=0)])
    view = MergedView([top, upper, lower])
    assert sorted(view.children(["data"])) == ["keep", "new"]
    assert view.lookup("/data/drop") is None
    assert sorted(view.children(["etc"])) == ["hostname"]  # opaque: the lower etc is hidden
    assert view.read("/etc/hostname") == b"box"
    assert view.resolve("/bin/tool") == ["usr", "bin", "tool"]
    assert view.read("/bin/tool") == b"old"
    assert view.resolve("/bin/../../../etc", follow_last=True) == ["etc"]
    assert [rel for rel, _ in view.walk(["data"])] == ["keep", "new"]
    below = MergedView([EntryLayer([whiteout_entry("usr", mtime=0)]), lower])
    assert below.lookup("/usr/bin/tool") is None and below.lookup("/bin") is not None


def test_entry_layer_hardlinks_and_symlinks() -> None:
    layer = EntryLayer([dir_entry("a", mtime=0), data_entry("a/f", b"x", mtime=0),
                        symlink_entry("a/l", "f", mtime=0)])
    view = MergedView([layer])
    assert view.read("/a/l") == b"x"
    with pytest.raises(BuildError, match="too many levels"):
        MergedView([EntryLayer([symlink_entry("loop", "/loop", mtime=0)])]).resolve("/loop/x")


def test_copy_destinations(tmp_path: Path) -> None:
    view = MergedView([DirLayer(lower_dir(tmp_path))])
    ctx = tmp_path / "ctx"
    (ctx / "dir" / "sub").mkdir(parents=True)
    (ctx / "one").write_text("1")
    (ctx / "dir" / "sub" / "two").write_text("2")

    def paths(items: list[ContextItem | ViewItem], dest: str, **kw: object) -> dict[str, str]:
        entries = transfer_entries(list(items), dest, workdir=str(kw.get("workdir", "/")),
                                   view=view, sde=SDE, owner=None, chmod=None, ignore=None,
                                   line=1)
        return {e.path: e.kind for e in entries}

    one = ContextItem(ctx / "one", "one")
    assert paths([one], "/bin/") == {"usr": "dir", "usr/bin": "dir", "usr/bin/one": "file"}
    assert paths([one], "/opt/renamed") == {"opt": "dir", "opt/renamed": "file"}
    assert paths([one], "rel", workdir="/tmp") == {"tmp": "dir", "tmp/rel": "file"}
    assert paths([one], "/data") == {"data": "dir", "data/one": "file"}  # existing dir
    assert paths([ContextItem(ctx / "dir", "dir")], "/x") == {
        "x": "dir", "x/sub": "dir", "x/sub/two": "file"}
    entries = transfer_entries([one], "/tmp/", workdir="/", view=view, sde=SDE, owner=(5, 6),
                               chmod=0o600, ignore=None, line=1)
    tmp_entry, file_entry = entries
    assert (tmp_entry.mode, tmp_entry.uid) == (0o1777, os.stat(tmp_path / "lower").st_uid)
    assert (file_entry.uid, file_entry.gid, file_entry.mode) == (5, 6, 0o600)
    assert all(entry.mtime <= SDE for entry in entries)
    from_stage = transfer_entries([ViewItem(view, ("data",))], "/copy/", workdir="/",
                                  view=MergedView([]), sde=SDE, owner=None, chmod=None,
                                  ignore=None, line=1)
    assert [e.path for e in from_stage] == ["copy", "copy/drop", "copy/keep"]


def test_ignore_file_excludes_context_files(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    (ctx / "d").mkdir(parents=True)
    (ctx / "d" / "keep.txt").write_text("k")
    (ctx / "d" / "skip.log").write_text("s")
    ignore = parse_ignore_file("**/*.log\n")
    entries = transfer_entries([ContextItem(ctx / "d", "d")], "/d", workdir="/",
                               view=MergedView([]), sde=SDE, owner=None, chmod=None,
                               ignore=ignore, line=1)
    assert [e.path for e in entries] == ["d", "d/keep.txt"]


def test_label_policy() -> None:
    ok = check_labels({"name": "f25/cockpit", "version": "130", "summary": "s",
                       "com.redhat.component": "cockpit", "run": "podman run"},
                      help_file="help.md")
    assert ok.ok and not ok.warnings
    bad = check_labels({"name": "Bad Name", "version": "1-2"}, help_file=None)
    assert not bad.ok
    text = bad.text()
    assert "missing label 'summary'" in text and "not a valid NVR" in text
    assert "no help.md or README.md" in text


def test_next_release() -> None:
    tags = ["1.0", "1.0-1.f25docker", "1.0-3.f25docker", "2.0-7.f25docker", "latest",
            "1.0-9.f26docker"]
    assert next_release("1.0", "f25docker", tags, []) == "4.f25docker"
    assert next_release("1.0", "f25docker", tags, ["5.f25docker"]) == "6.f25docker"
    assert next_release("3", "f25docker", tags, []) == "1.f25docker"
    assert next_release("1.0", "", ["1.0-2"], []) == "3"


def test_own_labels_follow_stage_chains() -> None:
    parsed = cf.parse_containerfile(
        "FROM base AS a\nLABEL name=x summary=from-a\nFROM a AS b\nLABEL version=2\n"
        "FROM other\nLABEL name=unrelated\nFROM b\nLABEL summary=final\n")
    assert own_labels(parsed, parsed.stages[-1]) == {"name": "x", "summary": "final",
                                                     "version": "2"}


def _rpm_blob(name: str, version: str, release: str, arch: str, epoch: int | None) -> bytes:
    data = b""
    index = []
    for tag, value in ((1000, name), (1001, version), (1002, release), (1022, arch)):
        index.append(struct.pack(">iiii", tag, 6, len(data), 1))
        data += value.encode() + b"\0"
    if epoch is not None:
        data += b"\0" * (-len(data) % 4)
        index.append(struct.pack(">iiii", 1003, 4, len(data), 1))
        data += struct.pack(">i", epoch)
    return struct.pack(">II", len(index), len(data)) + b"".join(index) + data


def test_package_databases(tmp_path: Path) -> None:
    assert _rpm_header(_rpm_blob("bash", "5.2", "1.fc39", "x86_64", 1)) == {
        "name": "bash", "version": "1:5.2-1.fc39", "arch": "x86_64", "type": "rpm"}
    root = tmp_path / "root"
    (root / "var/lib/rpm").mkdir(parents=True)
    (root / "var/lib/dpkg").mkdir(parents=True)
    db = sqlite3.connect(root / "var/lib/rpm/rpmdb.sqlite")
    db.execute("CREATE TABLE Packages (hnum INTEGER PRIMARY KEY, blob BLOB)")
    db.execute("INSERT INTO Packages (blob) VALUES (?)",
               (_rpm_blob("zlib", "1.3", "2", "x86_64", None),))
    db.commit()
    db.close()
    (root / "var/lib/dpkg/status").write_text(
        "Package: libc6\nStatus: install ok installed\nVersion: 2.36-9\nArchitecture: amd64\n"
        "Description: x\n more\n\nPackage: gone\nStatus: deinstall ok config-files\n"
        "Version: 1\n")
    assert os_packages(MergedView([DirLayer(root)])) == [
        {"name": "libc6", "version": "2.36-9", "arch": "amd64", "type": "deb"},
        {"name": "zlib", "version": "1.3-2", "arch": "x86_64", "type": "rpm"}]


@pytest.mark.parametrize(("text", "host", "repo", "tag", "digest"), [
    ("busybox", None, "busybox", "latest", None),
    ("f25/base:25", None, "f25/base", "25", None),
    ("127.0.0.1:5000/f25/base:25", "127.0.0.1:5000", "f25/base", "25", None),
    ("localhost/x@sha256:" + "a" * 64, "localhost", "x", None, "sha256:" + "a" * 64),
])
def test_image_references(text: str, host: str | None, repo: str, tag: str | None,
                          digest: str | None) -> None:
    ref = parse_image_ref(text)
    assert (ref.host, ref.repository, ref.tag, ref.digest) == (host, repo, tag, digest)
    with pytest.raises(BuildError):
        parse_image_ref("Not/Valid")
