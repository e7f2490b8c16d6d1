"""Reproducible layer writing, tree scanning, overlay diffs and safe unpacking."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import stat
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from strata.image.layer import (
    BLOCK_SIZE,
    Layer,
    LayerError,
    TarEntry,
    UnsafePathError,
    data_entry,
    diff_tree,
    dir_entry,
    entry_sort_key,
    file_entry,
    merge_entries,
    opaque_entry,
    scan_tree,
    symlink_entry,
    unpack_layer,
    whiteout_entry,
    write_layer,
)
from support.clients import missing, require_tool

SDE = 1_600_000_000
IS_ROOT = os.geteuid() == 0
# Root tests follow the CI rule (support.clients.missing): they fail in CI, skip elsewhere.
needs_root = pytest.mark.usefixtures("as_root")


@pytest.fixture
def as_root() -> None:
    if not IS_ROOT:
        missing("these layer tests need root (mknod, chown, trusted.* xattrs)",
                "run the tests as root, as CI does")


# --------------------------------------------------------------------------- helpers


def make_tree(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "usr" / "bin" / "tool").write_bytes(b"#!/bin/sh\necho tool\n")
    (root / "usr" / "bin" / "tool").chmod(0o4755)
    (root / "etc").mkdir()
    (root / "etc" / "config").write_text("key=value\n")
    (root / "tmp").mkdir()
    (root / "tmp").chmod(0o1777)
    (root / "empty").write_bytes(b"")
    (root / "big").write_bytes(bytes(range(256)) * 5000 + os.urandom(0) + b"tail")
    (root / "lib").symlink_to("usr/lib")
    (root / "usr" / "lib").mkdir()
    (root / "usr" / "lib" / "libx.so.1").write_bytes(b"\x7fELF" + b"\0" * 100)
    os.link(root / "usr" / "lib" / "libx.so.1", root / "usr" / "lib" / "libx.so")
    return root


def members(blob: Path) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(decompress(blob))) as tf:
        return tf.getmembers()


def decompress(blob: Path) -> bytes:
    data = blob.read_bytes()
    if data[:2] == b"\x1f\x8b":
        return gzip.decompress(data)
    if data[:4] == b"\x28\xb5\x2f\xfd":
        return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()
    return data


def snapshot(root: Path) -> dict[str, tuple[object, ...]]:
    """Comparable view of a tree: type, mode, owner, content or link target."""
    result: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            info = path.lstat()
            kind = stat.S_IFMT(info.st_mode)
            if stat.S_ISLNK(info.st_mode):
                payload: object = os.readlink(path)
            elif stat.S_ISREG(info.st_mode):
                payload = path.read_bytes()
            elif stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode):
                payload = (os.major(info.st_rdev), os.minor(info.st_rdev))
            else:
                payload = None
            mode = 0 if stat.S_ISLNK(info.st_mode) else stat.S_IMODE(info.st_mode)
            result[rel] = (kind, mode, info.st_uid, info.st_gid, payload)
    return result


def write(entries: Iterator[TarEntry] | list[TarEntry], out: Path, **kw: object) -> Layer:
    return write_layer(entries, out, **kw)  # type: ignore[arg-type]


def raw_tar(path: Path, build: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        for info, data in build:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def tinfo(name: str, kind: bytes = tarfile.REGTYPE, size: int = 0, **kw: object) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = size
    info.mode = 0o644 if kind != tarfile.DIRTYPE else 0o755
    for key, value in kw.items():
        setattr(info, key, value)
    return info


# --------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_two_runs_are_identical(tmp_path: Path, compression: str) -> None:
    tree = make_tree(tmp_path / "tree")
    one = write(scan_tree(tree, source_date_epoch=SDE), tmp_path / "1", compression=compression)
    two = write(scan_tree(tree, source_date_epoch=SDE), tmp_path / "2", compression=compression)
    assert one.digest == two.digest and one.diff_id == two.diff_id
    assert (tmp_path / "1").read_bytes() == (tmp_path / "2").read_bytes()
    blob = (tmp_path / "1").read_bytes()
    assert one.digest == "sha256:" + hashlib.sha256(blob).hexdigest()
    assert one.size == len(blob)
    assert one.diff_id == "sha256:" + hashlib.sha256(decompress(tmp_path / "1")).hexdigest()
    assert one.media_type.startswith("application/vnd.oci.image.layer.v1.tar")


@needs_root
def test_same_content_different_mtimes_owners_and_inodes_same_digest(tmp_path: Path) -> None:
    first = make_tree(tmp_path / "a")
    second = tmp_path / "b"
    shutil.copytree(first, second, symlinks=True)  # new inodes, "now" mtimes
    os.link(second / "usr/lib/libx.so.1", tmp_path / "outside-link")  # nlink 3, same layer
    os.unlink(second / "usr/lib/libx.so")
    os.link(second / "usr/lib/libx.so.1", second / "usr/lib/libx.so")
    for dirpath, dirnames, filenames in os.walk(second):
        for name in dirnames + filenames:
            os.chown(Path(dirpath) / name, 1234, 5678, follow_symlinks=False)
            os.utime(Path(dirpath) / name, (SDE + 99, SDE + 99), follow_symlinks=False)
    (second / "usr/bin/tool").chmod(0o4755)  # chown clears setuid
    one = write(scan_tree(first, source_date_epoch=SDE), tmp_path / "1.tgz")
    two = write(scan_tree(second, source_date_epoch=SDE), tmp_path / "2.tgz")
    assert one == Layer(two.digest, two.diff_id, two.size, two.media_type, one.path)


def test_gzip_header_has_no_name_and_zero_mtime(tmp_path: Path) -> None:
    layer = write(scan_tree(make_tree(tmp_path / "t"), source_date_epoch=SDE), tmp_path / "l")
    header = layer.path.read_bytes()[:10]
    assert header[:3] == b"\x1f\x8b\x08"
    assert header[3] == 0  # FLG: no FNAME/FCOMMENT/FEXTRA/FHCRC
    assert header[4:8] == b"\0\0\0\0"  # MTIME
    assert header[8] == 0 and header[9] == 0xFF  # XFL, OS fixed
    assert layer.media_type == "application/vnd.oci.image.layer.v1.tar+gzip"


def test_zstd_frame_has_checksum_but_no_content_size(tmp_path: Path) -> None:
    layer = write(
        scan_tree(make_tree(tmp_path / "t"), source_date_epoch=SDE),
        tmp_path / "l",
        compression="zstd",
        level=3,
    )
    data = layer.path.read_bytes()
    params = zstandard.get_frame_parameters(data)
    assert params.content_size == zstandard.CONTENTSIZE_UNKNOWN
    assert params.has_checksum and params.dict_id == 0
    assert layer.media_type == "application/vnd.oci.image.layer.v1.tar+zstd"


def test_all_compressions_share_the_diff_id(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "t")
    layers = [
        write(scan_tree(tree, source_date_epoch=SDE), tmp_path / c, compression=c)
        for c in ("gzip", "zstd", "none")
    ]
    assert len({layer.diff_id for layer in layers}) == 1
    assert layers[2].digest == layers[2].diff_id  # uncompressed: digest is the diff_id
    plain = decompress(layers[0].path)
    assert plain == decompress(layers[1].path) == layers[2].path.read_bytes()
    assert len(plain) % 512 == 0 and plain.endswith(b"\0" * 1024)


def test_large_file_spanning_blocks_is_reproducible(tmp_path: Path) -> None:
    tree = tmp_path / "t"
    tree.mkdir()
    chunk = hashlib.sha256(b"seed").digest() * 1000
    (tree / "large").write_bytes(chunk * (3 * BLOCK_SIZE // len(chunk) + 7))
    (tree / "small").write_bytes(b"x" * 777)
    one = write(scan_tree(tree, source_date_epoch=SDE), tmp_path / "1")
    two = write(scan_tree(tree, source_date_epoch=SDE), tmp_path / "2")
    assert one.digest == two.digest
    dest = tmp_path / "dest"
    dest.mkdir()
    assert unpack_layer(one.path, dest) == one.diff_id
    assert (dest / "large").read_bytes() == (tree / "large").read_bytes()


# --------------------------------------------------------------------------- headers


def test_headers_are_clean_and_mtimes_clamped(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "t")
    os.utime(tree / "etc/config", (SDE - 1000, SDE - 1000))
    os.utime(tree / "empty", ns=(0, (SDE + 1) * 10**9 + 123))
    layer = write(scan_tree(tree, source_date_epoch=SDE), tmp_path / "l")
    by_name = {m.name: m for m in members(layer.path)}
    assert by_name["etc/config"].mtime == SDE - 1000
    assert by_name["empty"].mtime == SDE
    for member in by_name.values():
        assert member.uname == "" and member.gname == ""
        assert member.uid == 0 and member.gid == 0
        assert member.pax_headers == {}
        assert isinstance(member.mtime, int) and member.mtime <= SDE
        assert not member.name.startswith(("/", "./"))
    raw = decompress(layer.path)
    assert b"atime" not in raw and b"ctime" not in raw
    assert b"etc/\0" in raw  # directories carry a trailing slash
    assert by_name["usr/bin/tool"].mode == 0o4755
    assert by_name["tmp"].mode == 0o1777
    assert by_name["lib"].issym() and by_name["lib"].linkname == "usr/lib"
    # the first occurrence in walk order holds the data, later names link to it
    assert by_name["usr/lib/libx.so"].isreg()
    assert by_name["usr/lib/libx.so.1"].islnk()
    assert by_name["usr/lib/libx.so.1"].linkname == "usr/lib/libx.so"


def test_entries_sorted_bytewise_by_component(tmp_path: Path) -> None:
    tree = tmp_path / "t"
    tree.mkdir()
    for name in ["b", "B", "a.b", "a-c", "_", "Z", "\u00e9"]:
        (tree / name).write_text(name)
    (tree / "a").mkdir()
    (tree / "a" / "z").write_text("z")
    (tree / "a" / "b").mkdir()
    (tree / "a" / "b" / "c").write_text("c")
    names = [e.path for e in scan_tree(tree, source_date_epoch=SDE)]
    assert names == ["B", "Z", "_", "a", "a/b", "a/b/c", "a/z", "a-c", "a.b", "b", "\u00e9"]
    assert names == sorted(names, key=entry_sort_key)


def test_long_and_non_ascii_names_use_pax(tmp_path: Path) -> None:
    tree = tmp_path / "t"
    long_dir = tree / ("d" * 120)
    long_dir.mkdir(parents=True)
    (long_dir / "f\u00fc\u00df").write_text("x")
    (tree / "link").symlink_to("t" * 150)
    layer = write(scan_tree(tree, source_date_epoch=SDE), tmp_path / "l")
    by_name = {m.name: m for m in members(layer.path)}
    assert by_name["d" * 120 + "/f\u00fc\u00df"].pax_headers["path"].endswith("f\u00fc\u00df")
    assert by_name["link"].linkname == "t" * 150
    again = write(scan_tree(tree, source_date_epoch=SDE), tmp_path / "l2")
    assert again.digest == layer.digest


def test_prefix_applies_to_paths_and_hardlink_targets(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "t")
    entries = list(scan_tree(tree, source_date_epoch=SDE, prefix="/opt/app/"))
    assert all(e.path.startswith("opt/app/") for e in entries)
    hard = next(e for e in entries if e.kind == "hardlink")
    assert hard.linkname == "opt/app/usr/lib/libx.so"


@needs_root
def test_owner_spec_tuple_and_callable(tmp_path: Path) -> None:
    tree = tmp_path / "t"
    tree.mkdir()
    (tree / "f").write_text("x")
    os.chown(tree / "f", 1000, 100)
    default = next(scan_tree(tree, source_date_epoch=SDE))
    forced = next(scan_tree(tree, source_date_epoch=SDE, owner=(5, 6)))
    mapped = next(scan_tree(tree, source_date_epoch=SDE, owner=lambda u, g: (u + 1, g + 1)))
    assert (default.uid, default.gid) == (0, 0)
    assert (forced.uid, forced.gid) == (5, 6)
    assert (mapped.uid, mapped.gid) == (1001, 101)
    chmodded = next(scan_tree(tree, source_date_epoch=SDE, chmod=0o600))
    assert chmodded.mode == 0o600


def test_xattrs_only_when_asked(tmp_path: Path) -> None:
    tree = tmp_path / "t"
    tree.mkdir()
    (tree / "f").write_text("x")
    try:
        os.setxattr(tree / "f", "user.strata", b"v\xff")
    except OSError:
        missing(f"{tmp_path} is on a filesystem without user xattrs",
                "run the tests with a temporary directory on ext4, xfs, btrfs or tmpfs")
    plain = next(scan_tree(tree, source_date_epoch=SDE))
    assert plain.xattrs == ()
    with_x = list(scan_tree(tree, source_date_epoch=SDE, xattrs=["user.strata"]))
    layer = write(with_x, tmp_path / "l")
    info = members(layer.path)[0]
    assert info.pax_headers["SCHILY.xattr.user.strata"].encode("utf-8", "surrogateescape") == (
        b"v\xff"
    )
    dest = tmp_path / "d"
    dest.mkdir()
    unpack_layer(layer.path, dest, xattrs=True)
    assert os.getxattr(dest / "f", "user.strata") == b"v\xff"


@needs_root
def test_devices_fifos_and_sockets(tmp_path: Path) -> None:
    import socket

    tree = tmp_path / "t"
    tree.mkdir()
    os.mknod(tree / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.mkfifo(tree / "pipe", 0o600)
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(os.fspath(tree / "sock"))
    sock.close()
    entries = {e.path: e for e in scan_tree(tree, source_date_epoch=SDE)}
    assert set(entries) == {"null", "pipe"}  # sockets cannot be stored in tar
    assert (entries["null"].kind, entries["null"].devmajor, entries["null"].devminor) == (
        "char",
        1,
        3,
    )
    layer = write(list(entries.values()), tmp_path / "l")
    dest = tmp_path / "d"
    dest.mkdir()
    unpack_layer(layer.path, dest)
    assert stat.S_ISCHR((dest / "null").lstat().st_mode)
    assert (dest / "null").lstat().st_rdev == os.makedev(1, 3)
    assert stat.S_ISFIFO((dest / "pipe").lstat().st_mode)


def test_whiteout_names_refused_in_plain_trees(tmp_path: Path) -> None:
    tree = tmp_path / "t"
    tree.mkdir()
    (tree / ".wh.oops").write_text("")
    with pytest.raises(LayerError, match="reserved for whiteouts"):
        list(scan_tree(tree, source_date_epoch=SDE))


# --------------------------------------------------------------------------- explicit entries


def test_explicit_entries_copy_single_file_with_chown_chmod(tmp_path: Path) -> None:
    src = tmp_path / "app.py"
    src.write_text("print('hi')\n")
    os.utime(src, (SDE + 50, SDE + 50))
    entries = merge_entries(
        [file_entry(src, "/srv/app/main.py", source_date_epoch=SDE, uid=10, gid=20, mode=0o750)],
        [data_entry("/etc/motd", b"hello\n", mtime=SDE)],
        [symlink_entry("/srv/current", "app", mtime=SDE)],
        parent_mtime=SDE,
    )
    assert [e.path for e in entries] == [
        "etc",
        "etc/motd",
        "srv",
        "srv/app",
        "srv/app/main.py",
        "srv/current",
    ]
    main = entries[4]
    assert (main.uid, main.gid, main.mode, main.mtime) == (10, 20, 0o750, SDE)
    layer = write(entries, tmp_path / "l")
    dest = tmp_path / "d"
    dest.mkdir()
    unpack_layer(layer.path, dest, same_owner=IS_ROOT)
    assert (dest / "srv/app/main.py").read_text() == "print('hi')\n"
    assert stat.S_IMODE((dest / "srv/app/main.py").stat().st_mode) == 0o750
    assert (dest / "srv/app/main.py").stat().st_mtime == SDE
    assert os.readlink(dest / "srv/current") == "app"
    if IS_ROOT:
        assert (dest / "srv/app/main.py").stat().st_uid == 10


def test_merge_last_wins_and_file_replacing_dir_drops_children(tmp_path: Path) -> None:
    entries = merge_entries(
        [dir_entry("x", mtime=1), data_entry("x/y", b"1", mtime=1), data_entry("z", b"1", mtime=1)],
        [data_entry("x", b"now a file", mtime=2), data_entry("z", b"22", mtime=2)],
        parent_mtime=0,
    )
    assert [(e.path, e.data) for e in entries] == [("x", b"now a file"), ("z", b"22")]


def test_entry_validation() -> None:
    for bad in ["", "/abs", "./x", "a/../b", "a//b", "a/"]:
        with pytest.raises(LayerError):
            TarEntry(path=bad, kind="file", mode=0o644)
    with pytest.raises(LayerError):
        TarEntry(path="x", kind="file", mode=0o10644)
    with pytest.raises(LayerError):
        TarEntry(path="x", kind="dir", mode=0o755, size=3)
    with pytest.raises(LayerError):
        data_entry("/", b"", mtime=0)
    assert whiteout_entry("/a/b", mtime=0).path == "a/.wh.b"
    assert opaque_entry("/a", mtime=0).path == "a/.wh..wh..opq"


def test_write_layer_refuses_duplicates_and_dangling_hardlinks(tmp_path: Path) -> None:
    out = tmp_path / "l"
    with pytest.raises(LayerError, match="duplicate"):
        write([data_entry("a", b"1", mtime=0), data_entry("a", b"2", mtime=0)], out)
    with pytest.raises(LayerError, match="hardlink"):
        write([TarEntry(path="b", kind="hardlink", mode=0o644, linkname="a")], out)
    assert list(tmp_path.iterdir()) == []  # no partial blob left behind


def test_file_changed_after_scan_is_detected(tmp_path: Path) -> None:
    tree = tmp_path / "t"
    tree.mkdir()
    (tree / "f").write_text("short")
    entries = list(scan_tree(tree, source_date_epoch=SDE))
    (tree / "f").write_text("much longer now")
    with pytest.raises(LayerError, match="size changed"):
        write(entries, tmp_path / "l")


def test_bad_levels_refused(tmp_path: Path) -> None:
    with pytest.raises(LayerError):
        write([], tmp_path / "l", compression="gzip", level=9)
    with pytest.raises(LayerError):
        write([], tmp_path / "l", compression="zstd", level=0)


# --------------------------------------------------------------------------- unpack & whiteouts


@needs_root
def test_diff_tree_whiteouts_and_opaque_round_trip(tmp_path: Path) -> None:
    lower = tmp_path / "lower"
    (lower / "etc").mkdir(parents=True)
    (lower / "etc" / "old.conf").write_text("old")
    (lower / "etc" / "keep.conf").write_text("keep")
    (lower / "var" / "cache" / "sub").mkdir(parents=True)
    (lower / "var" / "cache" / "a").write_text("a")
    (lower / "var" / "cache" / "sub" / "b").write_text("b")
    (lower / "zz").write_text("zz")

    upper = tmp_path / "upper"
    (upper / "etc").mkdir(parents=True)
    os.mknod(upper / "etc" / "old.conf", stat.S_IFCHR, os.makedev(0, 0))
    os.mknod(upper / "etc" / "never-existed", stat.S_IFCHR, os.makedev(0, 0))
    (upper / "etc" / "new.conf").write_text("new")
    (upper / "var" / "cache").mkdir(parents=True)
    os.setxattr(upper / "var" / "cache", "trusted.overlay.opaque", b"y")
    (upper / "var" / "cache" / "fresh").write_text("fresh")
    os.mknod(upper / "var" / "cache" / "gone", stat.S_IFCHR, os.makedev(0, 0))
    os.mknod(upper / "zz", stat.S_IFCHR, os.makedev(0, 0))

    entries = list(diff_tree([lower], upper, source_date_epoch=SDE))
    assert [e.path for e in entries] == [
        ".wh.zz",
        "etc",
        "etc/.wh.old.conf",
        "etc/new.conf",
        "var",
        "var/cache",
        "var/cache/.wh..wh..opq",
        "var/cache/fresh",
    ]
    assert [e.path for e in diff_tree(None, upper, source_date_epoch=SDE)].count(
        "etc/.wh.never-existed"
    ) == 1

    base = write(scan_tree(lower, source_date_epoch=SDE), tmp_path / "base")
    change = write(entries, tmp_path / "change")
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    assert unpack_layer(base.path, rootfs) == base.diff_id
    assert unpack_layer(change.path, rootfs) == change.diff_id
    assert sorted(snapshot(rootfs)) == [
        "etc",
        "etc/keep.conf",
        "etc/new.conf",
        "var",
        "var/cache",
        "var/cache/fresh",
    ]

    # The same layer applied as an overlay lowerdir records whiteouts overlay-style.
    layer_dir = tmp_path / "layerdir"
    layer_dir.mkdir()
    unpack_layer(change.path, layer_dir, whiteouts="overlay")
    assert (layer_dir / "zz").lstat().st_rdev == 0
    assert stat.S_ISCHR((layer_dir / "etc" / "old.conf").lstat().st_mode)
    assert os.getxattr(layer_dir / "var" / "cache", "trusted.overlay.opaque") == b"y"
    assert not (layer_dir / "var" / "cache" / ".wh..wh..opq").exists()


@needs_root
def test_real_overlay_upper_dir(tmp_path: Path) -> None:
    lower, upper, work, merged = (tmp_path / n for n in ("l", "u", "w", "m"))
    for d in (lower, upper, work, merged):
        d.mkdir()
    make_tree(lower)
    opts = f"lowerdir={lower},upperdir={upper},workdir={work}"
    if subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, merged]).returncode:
        missing("an overlayfs mount is not permitted here",
                "run the tests as root on a kernel with overlayfs, as CI does")
    try:
        (merged / "etc" / "config").unlink()
        (merged / "empty").unlink()
        shutil.rmtree(merged / "usr" / "lib")
        (merged / "usr" / "lib").mkdir()
        (merged / "usr" / "lib" / "new.so").write_text("new")
        (merged / "added").write_text("added")
    finally:
        subprocess.run(["umount", merged], check=True)
    entries = list(diff_tree([lower], upper, source_date_epoch=SDE))
    names = [e.path for e in entries]
    assert ".wh.empty" in names and "etc/.wh.config" in names
    assert "usr/lib/.wh..wh..opq" in names and "added" in names
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    unpack_layer(write(scan_tree(lower, source_date_epoch=SDE), tmp_path / "b").path, rootfs)
    unpack_layer(write(entries, tmp_path / "c").path, rootfs)
    assert sorted(p.relative_to(rootfs).as_posix() for p in (rootfs / "usr/lib").iterdir()) == [
        "usr/lib/new.so"
    ]
    assert not (rootfs / "etc/config").exists() and not (rootfs / "empty").exists()
    assert (rootfs / "added").read_text() == "added"


def test_opaque_after_same_layer_content_keeps_it(tmp_path: Path) -> None:
    rootfs = tmp_path / "r"
    (rootfs / "a" / "b" / "c").mkdir(parents=True)
    (rootfs / "a" / "b" / "c" / "bar").write_text("lower")
    (rootfs / "a" / "lowerfile").write_text("lower")
    blob = raw_tar(
        tmp_path / "l.tar",
        [
            (tinfo("a/", tarfile.DIRTYPE), None),
            (tinfo("a/b/", tarfile.DIRTYPE), None),
            (tinfo("a/b/c/", tarfile.DIRTYPE), None),
            (tinfo("a/b/c/foo", size=3), b"new"),
            (tinfo("a/.wh..wh..opq"), b""),
            (tinfo("a/b/.wh.c"), b""),  # same-layer content survives its own whiteouts
        ],
    )
    unpack_layer(blob, rootfs)
    assert sorted(snapshot(rootfs)) == ["a", "a/b", "a/b/c", "a/b/c/foo"]


def test_unpack_replaces_file_with_dir_and_sets_dir_attrs(tmp_path: Path) -> None:
    rootfs = tmp_path / "r"
    rootfs.mkdir()
    (rootfs / "x").write_text("file")
    (rootfs / "y").mkdir()
    (rootfs / "y" / "child").write_text("c")
    blob = raw_tar(
        tmp_path / "l.tar",
        [
            (tinfo("./x/", tarfile.DIRTYPE, mode=0o555, mtime=12345), None),
            (tinfo("./x/inner", size=2, mtime=777), b"hi"),
            (tinfo("./y", size=1), b"f"),
        ],
    )
    unpack_layer(blob, rootfs, same_owner=False)
    assert (rootfs / "x" / "inner").read_text() == "hi"
    assert stat.S_IMODE((rootfs / "x").stat().st_mode) == 0o555
    assert (rootfs / "x").stat().st_mtime == 12345
    assert (rootfs / "x" / "inner").stat().st_mtime == 777
    assert (rootfs / "y").read_text() == "f"


@pytest.mark.parametrize(
    ("name", "kind", "linkname"),
    [
        ("../evil", tarfile.REGTYPE, ""),
        ("a/../../evil", tarfile.REGTYPE, ""),
        ("/etc/evil", tarfile.REGTYPE, ""),
        ("hl", tarfile.LNKTYPE, "../outside"),
        ("hl", tarfile.LNKTYPE, "/etc/passwd"),
        ("a/.wh...", tarfile.REGTYPE, ""),
    ],
)
def test_path_traversal_refused(tmp_path: Path, name: str, kind: bytes, linkname: str) -> None:
    rootfs = tmp_path / "r"
    rootfs.mkdir()
    blob = raw_tar(tmp_path / "l.tar", [(tinfo(name, kind, linkname=linkname), b"")])
    with pytest.raises(UnsafePathError):
        unpack_layer(blob, rootfs)
    assert not (tmp_path / "evil").exists()


def test_symlink_escape_refused_and_absolute_symlinks_stay_inside(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    rootfs = tmp_path / "r"
    rootfs.mkdir()
    (rootfs / "up").symlink_to("../../outside")
    (rootfs / "abs").symlink_to(outside)  # absolute: means <rootfs><outside>
    escape = raw_tar(tmp_path / "e.tar", [(tinfo("up/evil", size=1), b"x")])
    with pytest.raises(UnsafePathError, match="escapes"):
        unpack_layer(escape, rootfs)
    inside = raw_tar(tmp_path / "i.tar", [(tinfo("abs/file", size=1), b"x")])
    unpack_layer(inside, rootfs)
    assert list(outside.iterdir()) == []
    assert (rootfs / outside.relative_to("/") / "file").read_text() == "x"
    # a symlink member then a member through it, in the same layer
    chained = raw_tar(
        tmp_path / "c.tar",
        [
            (tinfo("link", tarfile.SYMTYPE, linkname="/.."), None),
            (tinfo("link/evil", size=1), b"x"),
        ],
    )
    with pytest.raises(UnsafePathError):
        unpack_layer(chained, rootfs)


def test_final_symlink_component_is_replaced_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "target"
    outside.write_text("precious")
    rootfs = tmp_path / "r"
    rootfs.mkdir()
    (rootfs / "f").symlink_to(outside)
    unpack_layer(raw_tar(tmp_path / "l.tar", [(tinfo("f", size=3), b"new")]), rootfs)
    assert outside.read_text() == "precious"
    assert not (rootfs / "f").is_symlink() and (rootfs / "f").read_text() == "new"


def test_corrupt_blob_is_a_layer_error(tmp_path: Path) -> None:
    blob = tmp_path / "bad.gz"
    blob.write_bytes(b"\x1f\x8b\x08\x00" + b"garbage" * 10)
    dest = tmp_path / "d"
    dest.mkdir()
    with pytest.raises(LayerError):
        unpack_layer(blob, dest)


def test_unpack_round_trip_restores_tree(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "t")
    for compression in ("gzip", "zstd", "none"):
        layer = write(
            scan_tree(tree, source_date_epoch=SDE, owner=lambda u, g: (u, g)),
            tmp_path / f"l.{compression}",
            compression=compression,
        )
        dest = tmp_path / f"d.{compression}"
        dest.mkdir()
        assert unpack_layer(layer.path, dest) == layer.diff_id
        assert snapshot(dest) == snapshot(tree)
        assert (dest / "usr/lib/libx.so").stat().st_ino == (
            dest / "usr/lib/libx.so.1"
        ).stat().st_ino


_names = st.text(alphabet="abAB.-_0\u00e9", min_size=1, max_size=6).filter(
    lambda n: n not in (".", "..") and not n.startswith(".wh.")
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(
        st.lists(_names, min_size=1, max_size=3).map(tuple), st.binary(max_size=64), max_size=12
    )
)
def test_property_scan_order_and_round_trip(files: dict[tuple[str, ...], bytes]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        tree = base / "tree"
        tree.mkdir()
        for parts, content in files.items():
            path = tree.joinpath(*parts)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                if not path.exists():
                    path.write_bytes(content)
            except (FileExistsError, NotADirectoryError, IsADirectoryError):
                continue  # a prefix of this path is already a file, or vice versa
        entries = list(scan_tree(tree, source_date_epoch=SDE))
        paths = [e.path for e in entries]
        assert paths == sorted(paths, key=entry_sort_key)
        assert len(set(paths)) == len(paths)
        layer = write_layer(entries, base / "l")
        dest = base / "dest"
        dest.mkdir()
        assert unpack_layer(layer.path, dest) == layer.diff_id
        assert snapshot(dest) == snapshot(tree)


# --------------------------------------------------------------------------- header encoding


def _golden_entries() -> list[TarEntry]:
    return [
        TarEntry(path="bin", kind="dir", mode=0o755, mtime=1),
        TarEntry(
            path="bin/sh",
            kind="file",
            mode=0o755,
            mtime=2,
            size=5,
            data=b"echo\n",
            uid=3_000_000,
            gid=7,
        ),
        TarEntry(path="bin/sh2", kind="hardlink", mode=0o755, mtime=2, linkname="bin/sh"),
        TarEntry(path="dev", kind="dir", mode=0o755, mtime=1),
        TarEntry(path="dev/null", kind="char", mode=0o666, devmajor=1, devminor=3),
        TarEntry(path="dev/pipe", kind="fifo", mode=0o600),
        TarEntry(path="l" * 150, kind="symlink", mode=0o777, linkname="t\u00e9" * 60),
        TarEntry(
            path="x\udcff",  # the raw byte 0xff, as os.scandir reports it
            kind="file",
            mode=0o644,
            xattrs=(("security.capability", b"\x01\x00\xff"),),
        ),
    ]


def test_golden_diff_id_pins_the_tar_encoding(tmp_path: Path) -> None:
    """The uncompressed encoding is owned by strata, not by the Python version."""
    layer = write(_golden_entries(), tmp_path / "g", compression="none")
    assert layer.diff_id == (
        "sha256:6a29fcdc0153ff955a7b0f811e85a29f4f8a0c0c3c4f40bb211af780df275b03"
    )


def test_headers_read_back_by_tarfile_and_gnu_tar(tmp_path: Path) -> None:
    layer = write(_golden_entries(), tmp_path / "g.tar", compression="none")
    by_name = {m.name: m for m in members(layer.path)}
    assert by_name["bin/sh"].uid == 3_000_000 and by_name["bin/sh"].mode == 0o755
    assert by_name["bin/sh2"].islnk() and by_name["bin/sh2"].linkname == "bin/sh"
    assert (by_name["dev/null"].devmajor, by_name["dev/null"].devminor) == (1, 3)
    assert by_name["l" * 150].linkname == "t\u00e9" * 60
    odd = by_name["x\udcff"]
    xattr = odd.pax_headers["SCHILY.xattr.security.capability"]
    assert xattr.encode("utf-8", "surrogateescape") == b"\x01\x00\xff"
    require_tool("tar")
    listing = subprocess.run(
        ["tar", "-tvf", os.fspath(layer.path)], capture_output=True, check=True
    ).stdout.decode("utf-8", "replace")
    assert "3000000/7" in listing and "bin/sh2 link to bin/sh" in listing
    assert "l" * 150 + " -> " + "t\u00e9" * 60 in listing
