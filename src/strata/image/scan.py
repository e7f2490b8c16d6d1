"""Walk directory trees into reproducible, sorted layer entries.

:func:`scan_tree` turns a plain directory (a build context, a ``COPY`` source) into
entries; :func:`diff_tree` turns an overlayfs *upper* directory into a changeset with
OCI whiteouts.  Both are lazy generators: content is never read here, only ``lstat``
metadata, and entries come out in :func:`strata.image.entries.entry_sort_key` order.

Spec notes:

* OCI image-spec ``layer.md`` "File Types": regular files, directories, symlinks,
  block/char devices and FIFOs are emitted.  Sockets cannot be represented in tar and
  are skipped (as Docker and BuildKit do).
* ``layer.md`` "Hardlinks": non-directories sharing ``(st_dev, st_ino)`` inside the
  tree become type-``1`` entries pointing at the first occurrence in walk order.
* ``layer.md`` "Whiteouts" / "Opaque Whiteout" and the kernel's
  ``Documentation/filesystems/overlayfs.rst`` ("whiteouts and opaque directories"):
  an overlay deletion is a character device 0/0, an opaque directory carries the
  xattr ``trusted.overlay.opaque=y`` (``user.overlay.opaque`` with ``userxattr``).
* reproducible-builds.org ``SOURCE_DATE_EPOCH``: every mtime is clamped to
  ``min(mtime, source_date_epoch)``; atime/ctime are never recorded.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from strata.image.entries import (
    OPAQUE_WHITEOUT,
    WHITEOUT_PREFIX,
    EntryKind,
    TarEntry,
    clean_dest,
    component_key,
)
from strata.image.errors import LayerError

__all__ = ["OwnerSpec", "PathFilter", "diff_tree", "scan_tree"]

#: ``None``: every entry is owned by 0:0.  A ``(uid, gid)`` pair: every entry gets that
#: owner (``COPY --chown``).  A callable: maps the host ``(st_uid, st_gid)`` to the
#: layer's ids (identity for a rootful overlay upper, or a user-namespace shift).
OwnerSpec = tuple[int, int] | Callable[[int, int], tuple[int, int]]

_OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")
_UNSUPPORTED_OVERLAY_XATTRS = (
    "trusted.overlay.metacopy",
    "trusted.overlay.redirect",
    "user.overlay.metacopy",
    "user.overlay.redirect",
)


class PathFilter(Protocol):
    """What :func:`scan_tree` needs from an ignore matcher (``.containerignore``)."""

    def is_ignored(self, relpath: str) -> bool:
        """True if *relpath* (``/``-separated, relative to the scanned root) is excluded."""
        ...

    def can_prune(self, relpath: str) -> bool:
        """True if nothing below the ignored directory *relpath* can be re-included."""
        ...


@dataclass
class _Walker:
    root: Path
    source_date_epoch: int
    prefix: str
    owner: OwnerSpec | None
    chmod: int | None
    xattrs: Collection[str]
    ignore: PathFilter | None
    overlay: bool
    lowers: Sequence[Path] | None
    links: dict[tuple[int, int], str]

    def member(self, rel: str) -> str:
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def ids(self, st: os.stat_result) -> tuple[int, int]:
        if self.owner is None:
            return (0, 0)
        if callable(self.owner):
            return self.owner(st.st_uid, st.st_gid)
        return self.owner

    def mtime(self, st: os.stat_result) -> int:
        return max(0, min(st.st_mtime_ns // 1_000_000_000, self.source_date_epoch))

    def children(self, abs_dir: str) -> list[tuple[tuple[int, bytes], os.DirEntry[str]]]:
        try:
            with os.scandir(abs_dir) as it:
                found = list(it)
        except OSError as exc:
            raise LayerError(f"cannot list {abs_dir}: {exc}") from exc
        keyed = []
        for child in found:
            if child.name.startswith(WHITEOUT_PREFIX):
                raise LayerError(
                    f"{child.path}: names starting with {WHITEOUT_PREFIX!r} are reserved "
                    "for whiteouts and cannot be stored in a layer (layer.md, Whiteouts)"
                )
            st = child.stat(follow_symlinks=False)
            if self.overlay and _is_whiteout_node(st):
                keyed.append((component_key(WHITEOUT_PREFIX + child.name), child))
            else:
                keyed.append((component_key(child.name), child))
        keyed.sort(key=lambda pair: pair[0])
        return keyed

    def walk(self, abs_dir: str, rel_dir: str, opaque_above: bool) -> Iterator[TarEntry]:
        for _, child in self.children(abs_dir):
            rel = f"{rel_dir}/{child.name}" if rel_dir else child.name
            st = child.stat(follow_symlinks=False)
            if self.overlay:
                self.check_overlay_xattrs(child.path)
                if _is_whiteout_node(st):
                    if not opaque_above and self.visible_below(rel):
                        yield self.marker(rel_dir, WHITEOUT_PREFIX + child.name, st)
                    continue
            ignored = self.ignore is not None and self.ignore.is_ignored(rel)
            if stat.S_ISDIR(st.st_mode):
                if ignored and self.ignore is not None and self.ignore.can_prune(rel):
                    continue
                opaque = self.overlay and _is_opaque(child.path)
                sub = self.walk(child.path, rel, opaque_above or opaque)
                if ignored:
                    # An ignored directory only appears when an exception pattern
                    # re-includes something below it; metadata only is buffered.
                    kept = list(sub)
                    if not kept:
                        continue
                    sub = iter(kept)
                dir_entry = self.entry(rel, st, child.path)
                assert dir_entry is not None
                yield dir_entry
                if opaque and not opaque_above and self.visible_below(rel):
                    yield self.marker(rel, OPAQUE_WHITEOUT, st)
                yield from sub
            elif not ignored:
                entry = self.entry(rel, st, child.path)
                if entry is not None:
                    yield entry

    def marker(self, rel_dir: str, name: str, st: os.stat_result) -> TarEntry:
        rel = f"{rel_dir}/{name}" if rel_dir else name
        return TarEntry(path=self.member(rel), kind="file", mode=0o600, mtime=self.mtime(st))

    def entry(self, rel: str, st: os.stat_result, abs_path: str) -> TarEntry | None:
        fmt = stat.S_IFMT(st.st_mode)
        if fmt == stat.S_IFSOCK:
            return None
        member = self.member(rel)
        mode = stat.S_IMODE(st.st_mode) if self.chmod is None else self.chmod
        kind: EntryKind
        size = devmajor = devminor = 0
        linkname = ""
        source: Path | None = None
        first = None
        if fmt != stat.S_IFDIR and st.st_nlink > 1:
            key = (st.st_dev, st.st_ino)
            first = self.links.get(key)
            if first is None:
                self.links[key] = member
        if fmt == stat.S_IFDIR:
            kind = "dir"
        elif first is not None:
            kind, linkname = "hardlink", first
        elif fmt == stat.S_IFREG:
            kind, size, source = "file", st.st_size, Path(abs_path)
        elif fmt == stat.S_IFLNK:
            kind, mode, linkname = "symlink", 0o777, os.readlink(abs_path)
        elif fmt in (stat.S_IFCHR, stat.S_IFBLK):
            kind = "char" if fmt == stat.S_IFCHR else "block"
            devmajor, devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        elif fmt == stat.S_IFIFO:
            kind = "fifo"
        else:
            raise LayerError(f"{abs_path}: unsupported file type {fmt:#o}")
        uid, gid = self.ids(st)
        return TarEntry(
            path=member,
            kind=kind,
            mode=mode,
            uid=uid,
            gid=gid,
            mtime=self.mtime(st),
            size=size,
            linkname=linkname,
            devmajor=devmajor,
            devminor=devminor,
            source=source,
            xattrs=self.read_xattrs(abs_path),
        )

    def read_xattrs(self, abs_path: str) -> tuple[tuple[str, bytes], ...]:
        if not self.xattrs:
            return ()
        found = []
        for name in sorted(self.xattrs):
            try:
                found.append((name, os.getxattr(abs_path, name, follow_symlinks=False)))
            except OSError:
                continue
        return tuple(found)

    def check_overlay_xattrs(self, abs_path: str) -> None:
        try:
            names = os.listxattr(abs_path, follow_symlinks=False)
        except OSError:
            return
        bad = sorted(set(names) & set(_UNSUPPORTED_OVERLAY_XATTRS))
        if bad:
            raise LayerError(
                f"{abs_path}: overlay xattr {bad[0]} found; mount the overlay with "
                "metacopy=off,redirect_dir=off so the upper directory is self-contained"
            )

    def visible_below(self, rel: str) -> bool:
        """Is *rel* present in the merged lower layers (``None`` lowers: assume yes)?"""
        if self.lowers is None:
            return True
        return _visible_in_lowers(self.lowers, rel.split("/"))


def _is_whiteout_node(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _is_opaque(abs_path: str) -> bool:
    for name in _OPAQUE_XATTRS:
        try:
            if os.getxattr(abs_path, name, follow_symlinks=False) == b"y":
                return True
        except OSError:
            continue
    return False


def _visible_in_lowers(lowers: Sequence[Path], parts: list[str]) -> bool:
    """Overlay lookup of *parts* through *lowers* (topmost first, like ``lowerdir=``)."""
    for lower in lowers:
        current = os.fspath(lower)
        opaque_seen = False
        for index, part in enumerate(parts):
            current = os.path.join(current, part)
            try:
                st = os.lstat(current)
            except FileNotFoundError:
                if opaque_seen:
                    return False
                break
            if _is_whiteout_node(st):
                return False
            if index == len(parts) - 1:
                return True
            if not stat.S_ISDIR(st.st_mode):
                return False
            opaque_seen = opaque_seen or _is_opaque(current)
    return False


def _clean_prefix(prefix: str) -> str:
    return clean_dest(prefix) if prefix else ""


def scan_tree(
    root: Path,
    *,
    source_date_epoch: int,
    prefix: str = "",
    owner: OwnerSpec | None = None,
    chmod: int | None = None,
    xattrs: Collection[str] = (),
    ignore: PathFilter | None = None,
) -> Iterator[TarEntry]:
    """Yield entries for everything below *root* (not *root* itself), sorted.

    *prefix* is the container directory the contents land in (``"app"`` or ``"/app"``);
    use :func:`strata.image.entries.merge_entries` or
    :func:`strata.image.entries.dir_entry` to add entries for the prefix directories.
    *owner* is described at :data:`OwnerSpec`; *chmod* replaces the permission bits of
    every non-symlink entry (``COPY --chmod``); *xattrs* lists the extended-attribute
    names to record (none by default).  *ignore* filters paths relative to *root*.
    Names starting with ``.wh.`` are refused: they would read as whiteouts.
    """
    walker = _Walker(
        root=root,
        source_date_epoch=source_date_epoch,
        prefix=_clean_prefix(prefix),
        owner=owner,
        chmod=chmod,
        xattrs=xattrs,
        ignore=ignore,
        overlay=False,
        lowers=None,
        links={},
    )
    if not root.is_dir():
        raise LayerError(f"{root}: not a directory")
    return walker.walk(os.fspath(root), "", False)


def diff_tree(
    lower_dirs: Sequence[Path] | None,
    upper: Path,
    *,
    source_date_epoch: int,
    owner: OwnerSpec | None = None,
    xattrs: Collection[str] = (),
) -> Iterator[TarEntry]:
    """Yield the changeset recorded in an overlayfs *upper* directory, sorted.

    Overlay deletions (char device 0/0) become ``.wh.<name>`` entries and opaque
    directories get a ``.wh..wh..opq`` entry placed before their children.  With
    *lower_dirs* (the overlay's ``lowerdir=`` list, topmost first) redundant markers --
    deleting something no lower layer has, or inside an opaque directory -- are
    dropped; with ``None`` every marker is kept.  Uppers written with ``metacopy`` or
    ``redirect_dir`` are refused (their content lives partly in the lower layers).
    """
    walker = _Walker(
        root=upper,
        source_date_epoch=source_date_epoch,
        prefix="",
        owner=owner,
        chmod=None,
        xattrs=xattrs,
        ignore=None,
        overlay=True,
        lowers=None if lower_dirs is None else tuple(lower_dirs),
        links={},
    )
    if not upper.is_dir():
        raise LayerError(f"{upper}: not a directory")
    return walker.walk(os.fspath(upper), "", False)
