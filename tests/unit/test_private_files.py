"""Owner-only data dir (issue 12): files 0600 and directories 0700 whatever the umask, and
``tighten`` for a data dir left open."""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import pytest

from strata.oci.digest import Digest
from strata.storage.filesystem import FilesystemBlobStore
from strata.storage.private import private_dir, tighten, write_private_file


@pytest.fixture
def umask_000() -> Iterator[None]:
    old = os.umask(0)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def assert_owner_only(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        assert mode(path) == (0o700 if path.is_dir() else 0o600), (path, oct(mode(path)))


async def one(data: bytes) -> AsyncIterator[Sequence[bytes]]:
    yield [data]


@pytest.mark.usefixtures("umask_000")
@pytest.mark.parametrize("owner_files", [False, True])
async def test_the_blob_store_creates_owner_only_paths(tmp_path: Path, owner_files: bool) -> None:
    store = FilesystemBlobStore(tmp_path / "new" / "data")
    store.owner_xattr = not owner_files  # owner files: a filesystem without user xattrs
    await store.upload_start("u1", "r/x")
    await store.upload_write("u1", 0, one(b"data"))
    store.upload_place("u1", Digest.parse("sha256:" + hashlib.sha256(b"data").hexdigest()))
    await store.upload_start("u2", "r/x")  # one left in progress
    await store.upload_write("u2", 0, one(b"half"))
    # data, blobs, blobs/sha256, blobs/sha256/xx, the blob, uploads, uploads/u2 (+ its owner)
    assert len(list((tmp_path / "new").rglob("*"))) == (8 if owner_files else 7)
    assert_owner_only(tmp_path / "new")


@pytest.mark.usefixtures("umask_000")
def test_private_dir_and_file(tmp_path: Path) -> None:
    private_dir(tmp_path / "a" / "b" / "c")
    assert write_private_file(tmp_path / "a" / "b" / "key", b"k")
    assert not write_private_file(tmp_path / "a" / "b" / "key", b"other")  # first one wins
    assert (tmp_path / "a" / "b" / "key").read_bytes() == b"k"
    assert_owner_only(tmp_path / "a")


def test_tighten_takes_group_and_other_bits_off(tmp_path: Path) -> None:
    root = tmp_path / "data"
    blob = root / "blobs" / "sha256" / "ab" / "abc"
    blob.parent.mkdir(parents=True)
    blob.write_bytes(b"x")
    (root / "strata.db").write_bytes(b"")
    (root / "notes.txt").write_bytes(b"")  # not strata's
    target = tmp_path / "elsewhere"
    target.write_bytes(b"")
    (root / "link").symlink_to(target)
    for path in [root, *root.rglob("*"), target]:
        if not path.is_symlink():
            path.chmod(0o775 if path.is_dir() else 0o664)
    blob.chmod(0o755)
    done = tighten(root, ("blobs", "strata.db", "link", "missing"))
    assert (done.directories, done.files, done.failed) == (4, 2, [])
    assert mode(blob) == 0o700 and mode(root / "strata.db") == 0o600
    assert mode(root) == 0o700 and mode(root / "blobs" / "sha256") == 0o700
    assert mode(root / "notes.txt") == 0o664  # only what strata keeps there
    assert mode(target) == 0o664  # a symlink's target is never changed
    assert done.messages(root) == [
        f"{root}: 4 directories were open to other users; made owner-only (0700)",
        f"{root}: 2 files were open to other users; made owner-only (0600 or 0700)"]
    assert tighten(root, ("blobs", "strata.db")).messages(root) == []
    assert tighten(root).files == 1  # everything, when no entries are named
