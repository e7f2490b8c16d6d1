"""Layer tar entries: the immutable description of one member of a layer tarball.

A :class:`TarEntry` carries everything that goes into a tar header plus where the
content comes from (a file on disk, or a few inline bytes).  Entries are produced by
:func:`strata.image.scan.scan_tree` / :func:`strata.image.scan.diff_tree` or by the
explicit constructors here (``COPY`` of single files, generated files, parent
directories), and serialised by :func:`strata.image.layer.write_layer`.

Spec notes (OCI image-spec v1.1, ``layer.md``):

* "File Attributes": mtime, uid, gid, mode, xattrs, link targets are recorded;
  ``uname``/``gname`` are *secondary* to the numeric ids, so they are always left empty
  (a build host's ``/etc/passwd`` must not leak into the digest).
* "Whiteouts": ``.wh.<name>`` marks a deletion; ``.wh..wh..opq`` marks an opaque
  directory.  Producers "SHOULD generate layers such that the whiteout files appear
  before sibling directory entries", which :func:`entry_sort_key` implements.
* Member names are relative, ``/``-separated, without a leading ``./`` or ``/`` -- the
  form written by Docker/BuildKit/buildah (``usr/bin/env``); directories get a trailing
  ``/`` when serialised (Python's :mod:`tarfile` and Go's ``archive/tar`` both do this).
  The spec's own example lists ``./etc/``; every tar reader accepts either form, and the
  root directory itself is not emitted (it cannot be named without ``./``).
"""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from strata.image.errors import LayerError

__all__ = [
    "MAX_MTIME",
    "OPAQUE_WHITEOUT",
    "WHITEOUT_PREFIX",
    "EntryKind",
    "TarEntry",
    "clean_dest",
    "component_key",
    "data_entry",
    "dir_entry",
    "entry_sort_key",
    "file_entry",
    "merge_entries",
    "opaque_entry",
    "symlink_entry",
    "validate_member_path",
    "whiteout_entry",
    "with_owner",
]

WHITEOUT_PREFIX = ".wh."
OPAQUE_WHITEOUT = ".wh..wh..opq"

EntryKind = Literal["file", "dir", "symlink", "hardlink", "char", "block", "fifo"]

_KINDS = frozenset({"file", "dir", "symlink", "hardlink", "char", "block", "fifo"})

#: ustar stores mtime in 11 octal digits; later times would need a pax record.
MAX_MTIME = 8**11 - 1


def validate_member_path(path: str) -> str:
    """Check that *path* is a canonical layer member name and return it unchanged.

    Canonical means: relative, ``/``-separated, no empty, ``.`` or ``..`` components,
    no leading ``./`` or ``/``, no trailing ``/`` and no NUL byte.
    """
    if not path or "\0" in path:
        raise LayerError(f"invalid layer member name {path!r}")
    parts = path.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise LayerError(f"layer member name is not canonical: {path!r}")
    return path


def clean_dest(dest: str) -> str:
    """Turn a container path such as ``/app/./bin/`` into the member name ``app/bin``.

    The path is interpreted relative to the container root and cleaned lexically (like
    Go's ``path.Clean``), so ``..`` can never climb above the root.  The root itself
    becomes ``""``.
    """
    if "\0" in dest:
        raise LayerError(f"invalid destination path {dest!r}")
    return posixpath.normpath("/" + dest).lstrip("/")


def component_key(name: str) -> tuple[int, bytes]:
    """Sort key of one path component: opaque marker, then whiteouts, then bytewise."""
    if name == OPAQUE_WHITEOUT:
        return (0, b"")
    if name.startswith(WHITEOUT_PREFIX):
        return (1, os.fsencode(name[len(WHITEOUT_PREFIX) :]))
    return (2, os.fsencode(name))


def entry_sort_key(path: str) -> tuple[tuple[int, bytes], ...]:
    """Total order of layer members.

    Component-wise bytewise order -- the order of a depth-first walk that lists each
    directory sorted by raw name bytes (Go's ``filepath.Walk``), so a directory always
    precedes its contents -- except that within one directory the opaque marker comes
    first and ``.wh.`` whiteouts come before their siblings (``layer.md``, "Whiteouts").
    """
    return tuple(component_key(part) for part in path.split("/"))


@dataclass(frozen=True, slots=True)
class TarEntry:
    """One member of a layer tarball.

    ``path`` is a canonical member name (see :func:`validate_member_path`).  For a
    ``file``, content comes from ``source`` (read when the layer is written, after
    checking that its size is still ``size``) or from ``data``; with neither it is empty.
    ``linkname`` is the symlink target, or for a ``hardlink`` the member name of an
    earlier entry.  ``mode`` holds permission bits including setuid/setgid/sticky.
    ``xattrs`` are ``(name, value)`` pairs sorted by name, written as pax
    ``SCHILY.xattr.<name>`` records.
    """

    path: str
    kind: EntryKind
    mode: int
    uid: int = 0
    gid: int = 0
    mtime: int = 0
    size: int = 0
    linkname: str = ""
    devmajor: int = 0
    devminor: int = 0
    source: Path | None = None
    data: bytes | None = None
    xattrs: tuple[tuple[str, bytes], ...] = ()

    def __post_init__(self) -> None:
        validate_member_path(self.path)
        if self.kind not in _KINDS:
            raise LayerError(f"{self.path}: unknown entry kind {self.kind!r}")
        if not 0 <= self.mode <= 0o7777:
            raise LayerError(f"{self.path}: mode {self.mode:#o} is not a permission mode")
        if self.uid < 0 or self.gid < 0 or self.mtime < 0 or self.size < 0:
            raise LayerError(f"{self.path}: uid, gid, mtime and size must be >= 0")
        if self.mtime > MAX_MTIME:
            raise LayerError(f"{self.path}: mtime {self.mtime} is beyond the ustar range")
        if self.kind == "file":
            if self.source is not None and self.data is not None:
                raise LayerError(f"{self.path}: give either source or data, not both")
            if self.data is not None and len(self.data) != self.size:
                raise LayerError(f"{self.path}: size does not match inline data")
            if self.source is None and self.data is None and self.size:
                raise LayerError(f"{self.path}: non-empty file without content")
        elif self.size or self.source is not None or self.data is not None:
            raise LayerError(f"{self.path}: only regular files carry content")
        if self.kind == "symlink" and not self.linkname:
            raise LayerError(f"{self.path}: symlink without target")
        if self.kind == "hardlink":
            validate_member_path(self.linkname)
        elif self.kind != "symlink" and self.linkname:
            raise LayerError(f"{self.path}: only links have a linkname")
        names = [name for name, _ in self.xattrs]
        if names != sorted(set(names)):
            raise LayerError(f"{self.path}: xattrs must be sorted by name and unique")

    @property
    def name(self) -> str:
        """The last path component."""
        return self.path.rpartition("/")[2]

    @property
    def is_whiteout(self) -> bool:
        """True for ``.wh.`` markers, including the opaque marker."""
        return self.name.startswith(WHITEOUT_PREFIX)


def _clamp(mtime: int, source_date_epoch: int) -> int:
    return max(0, min(mtime, source_date_epoch))


def file_entry(
    src: Path,
    dest: str,
    *,
    source_date_epoch: int,
    uid: int = 0,
    gid: int = 0,
    mode: int | None = None,
) -> TarEntry:
    """Entry for a single regular file copied to container path *dest*.

    Models ``COPY [--chown=uid:gid] [--chmod=mode] src dest``: a symlink given as *src*
    is followed (as Docker does for named sources), *mode* defaults to the source's
    permission bits and the mtime is clamped to *source_date_epoch*.
    """
    st = os.stat(src)
    if not stat.S_ISREG(st.st_mode):
        raise LayerError(f"{src}: not a regular file")
    return TarEntry(
        path=_dest_member(dest),
        kind="file",
        mode=stat.S_IMODE(st.st_mode) if mode is None else mode,
        uid=uid,
        gid=gid,
        mtime=_clamp(st.st_mtime_ns // 1_000_000_000, source_date_epoch),
        size=st.st_size,
        source=src,
    )


def data_entry(
    dest: str, data: bytes, *, mtime: int, uid: int = 0, gid: int = 0, mode: int = 0o644
) -> TarEntry:
    """Entry for a generated file whose (small) content is given inline."""
    return TarEntry(
        path=_dest_member(dest),
        kind="file",
        mode=mode,
        uid=uid,
        gid=gid,
        mtime=mtime,
        size=len(data),
        data=data,
    )


def dir_entry(dest: str, *, mtime: int, uid: int = 0, gid: int = 0, mode: int = 0o755) -> TarEntry:
    """Entry for a directory (e.g. a ``WORKDIR`` or the parent of a ``COPY`` target)."""
    return TarEntry(path=_dest_member(dest), kind="dir", mode=mode, uid=uid, gid=gid, mtime=mtime)


def symlink_entry(dest: str, target: str, *, mtime: int, uid: int = 0, gid: int = 0) -> TarEntry:
    """Entry for a symbolic link at *dest* pointing to *target* (stored verbatim)."""
    return TarEntry(
        path=_dest_member(dest),
        kind="symlink",
        mode=0o777,
        uid=uid,
        gid=gid,
        mtime=mtime,
        linkname=target,
    )


def whiteout_entry(deleted: str, *, mtime: int) -> TarEntry:
    """``.wh.<name>`` marker deleting container path *deleted* from lower layers."""
    member = _dest_member(deleted)
    parent, _, name = member.rpartition("/")
    marker = WHITEOUT_PREFIX + name
    return TarEntry(
        path=f"{parent}/{marker}" if parent else marker, kind="file", mode=0o600, mtime=mtime
    )


def opaque_entry(directory: str, *, mtime: int) -> TarEntry:
    """``.wh..wh..opq`` marker hiding all lower-layer content of *directory*."""
    member = clean_dest(directory)
    return TarEntry(
        path=f"{member}/{OPAQUE_WHITEOUT}" if member else OPAQUE_WHITEOUT,
        kind="file",
        mode=0o600,
        mtime=mtime,
    )


def _dest_member(dest: str) -> str:
    member = clean_dest(dest)
    if not member:
        raise LayerError(f"destination {dest!r} names the root directory")
    return member


def merge_entries(
    *groups: Iterable[TarEntry],
    parent_mtime: int,
    parent_mode: int = 0o755,
    parent_owner: tuple[int, int] = (0, 0),
) -> list[TarEntry]:
    """Combine entry groups into one sorted, duplicate-free list for one layer.

    A later entry for the same path replaces an earlier one (a later ``COPY`` source
    wins); when a non-directory replaces a path, earlier entries below it are dropped.
    Missing parent directories are synthesised with *parent_mode*, *parent_owner* and
    *parent_mtime*, so the layer is self-describing.  Only metadata is held in memory.
    """
    merged: dict[str, TarEntry] = {}
    for group in groups:
        for entry in group:
            old = merged.get(entry.path)
            if old is not None and old.kind == "dir" and entry.kind != "dir":
                below = entry.path + "/"
                for path in [p for p in merged if p.startswith(below)]:
                    del merged[path]
            merged[entry.path] = entry
    uid, gid = parent_owner
    for path in list(merged):
        parent = path.rpartition("/")[0]
        while parent and parent not in merged:
            merged[parent] = TarEntry(
                path=parent, kind="dir", mode=parent_mode, uid=uid, gid=gid, mtime=parent_mtime
            )
            parent = parent.rpartition("/")[0]
        if parent and merged[parent].kind != "dir":
            raise LayerError(f"{path}: parent {parent} is not a directory in this layer")
    return sorted(merged.values(), key=lambda e: entry_sort_key(e.path))


def with_owner(entry: TarEntry, uid: int, gid: int) -> TarEntry:
    """Copy of *entry* with a different owner (``--chown`` applied after the fact)."""
    return replace(entry, uid=uid, gid=gid)
