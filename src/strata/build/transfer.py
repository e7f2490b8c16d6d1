"""``COPY`` and ``ADD``: the entries of the layer they add.

Semantics follow the Dockerfile reference ("COPY", "ADD"):

* a directory source copies its *contents*; a file source lands at ``dest`` itself unless
  ``dest`` ends with ``/``, names an existing directory, or there are several sources;
* a relative ``dest`` is relative to ``WORKDIR``; the destination is resolved through the
  image's symlinks (``COPY x /bin/`` on a merged-``/usr`` image writes ``usr/bin/x``);
* new files belong to 0:0 unless ``--chown`` (context sources) -- ``COPY --from`` keeps the
  owners it finds -- and ``--chmod`` replaces permission bits;
* ``ADD`` of a local tar archive (plain, gzip, bzip2, xz, zstd) unpacks it, keeping the
  owners and modes recorded in it; URLs are refused (builds have no network).

Parent directories that already exist in the image are written with their existing
attributes; missing ones are created ``0755``.  Every mtime becomes ``SOURCE_DATE_EPOCH``
(:class:`strata.build.layers.LayerWriter` sets it on every entry).  When the context is a
git checkout, context files get the modes git records -- ``0755`` if executable, else
``0644``; directories ``0755`` -- whatever the umask of the checkout was, so the same
commit gives the same layer from any checkout.  File contents are not read here: entries
point at the files and :func:`strata.image.write_layer` reads each exactly once.
"""

from __future__ import annotations

import bz2
import dataclasses
import fnmatch
import lzma
import os
import posixpath
import shutil
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from strata.build.errors import BuildError
from strata.build.fsview import MergedView, Node
from strata.build.ignore import IgnoreMatcher
from strata.image.layer import (
    LayerError,
    TarEntry,
    dir_entry,
    file_entry,
    merge_entries,
    scan_tree,
    unpack_layer,
)

__all__ = ["ContextItem", "ViewItem", "extract_archive", "is_archive", "match_view",
           "transfer_entries"]

Owner = tuple[int, int]


@dataclass(frozen=True)
class ContextItem:
    """A path in the build context (``rel`` is context-relative, for the ignore file)."""

    path: Path
    rel: str | None  # None: not in the context (an unpacked ADD archive): nothing ignored
    keep_owner: bool = False  # an unpacked ADD archive keeps the owners it recorded


@dataclass(frozen=True)
class ViewItem:
    """A path in another stage's (or image's) filesystem."""

    view: MergedView
    parts: tuple[str, ...]


Item = ContextItem | ViewItem


class _Prefixed:
    """The context's ignore matcher seen from a subdirectory of the context."""

    def __init__(self, matcher: IgnoreMatcher, prefix: str) -> None:
        self.matcher = matcher
        self.prefix = prefix

    def _full(self, rel: str) -> str:
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def is_ignored(self, relpath: str) -> bool:
        return self.matcher.is_ignored(self._full(relpath))

    def can_prune(self, relpath: str) -> bool:
        return self.matcher.can_prune(self._full(relpath))


def _clamp(mtime: int, sde: int) -> int:
    return max(0, min(mtime, sde))


def _node_entry(member: str, node: Node, sde: int, owner: Owner | None,
                chmod: int | None) -> TarEntry | None:
    if node.kind == "whiteout":
        return None
    uid, gid = owner if owner is not None else (node.uid, node.gid)
    mode = node.mode if chmod is None or node.kind == "symlink" else chmod
    return TarEntry(path=member, kind=node.kind, mode=mode, uid=uid, gid=gid,
                    mtime=_clamp(node.mtime, sde), size=node.size if node.kind == "file" else 0,
                    linkname=node.linkname, devmajor=node.devmajor, devminor=node.devminor,
                    source=node.source if node.kind == "file" else None,
                    data=node.data if node.kind == "file" else None)


def _is_dir(item: Item) -> bool:
    if isinstance(item, ContextItem):
        return item.path.is_dir()
    node = item.view.lookup_parts(item.view.resolve("/".join(item.parts)))
    return node is not None and node.kind == "dir"


def _basename(item: Item) -> str:
    if isinstance(item, ContextItem):
        return item.path.name
    return item.parts[-1] if item.parts else ""


def _git_mode(entry: TarEntry) -> TarEntry:
    """*entry* with the mode a git checkout with umask 022 gives it."""
    if entry.kind == "file":
        mode = 0o755 if entry.mode & 0o111 else 0o644
    elif entry.kind == "dir":
        mode = 0o755
    else:
        return entry
    return entry if entry.mode == mode else dataclasses.replace(entry, mode=mode)


def _item_entries(item: Item, member: str, *, sde: int, owner: Owner | None,
                  chmod: int | None, ignore: IgnoreMatcher | None,
                  git_modes: bool = False) -> Iterator[TarEntry]:
    if isinstance(item, ContextItem):
        if git_modes and chmod is None and item.rel is not None:
            for found in _item_entries(item, member, sde=sde, owner=owner, chmod=None,
                                       ignore=ignore):
                yield _git_mode(found)
            return
        if item.path.is_dir():
            owner_spec = owner if owner is not None else (
                (lambda uid, gid: (uid, gid)) if item.keep_owner else (0, 0))
            prefixed = (_Prefixed(ignore, item.rel)
                        if ignore is not None and item.rel is not None else None)
            yield from scan_tree(item.path, source_date_epoch=sde, prefix=member,
                                 owner=owner_spec, chmod=chmod, ignore=prefixed)
        else:
            uid, gid = owner or (0, 0)
            yield file_entry(item.path, member, source_date_epoch=sde, uid=uid, gid=gid,
                             mode=chmod)
        return
    parts = item.view.resolve("/".join(item.parts))
    node = item.view.lookup_parts(parts)
    if node is None:
        raise BuildError(f"{'/' + '/'.join(item.parts)}: not found")
    if node.kind != "dir":
        entry = _node_entry(member, node, sde, owner, chmod)
        if entry is not None:
            yield entry
        return
    for rel, child in item.view.walk(parts):
        entry = _node_entry(f"{member}/{rel}", child, sde, owner, chmod)
        if entry is not None:
            yield entry


def _parents(view: MergedView, member: str, sde: int) -> Iterator[TarEntry]:
    """Entries for the existing ancestors of *member*, with their current attributes."""
    parts = member.split("/")[:-1]
    for index in range(1, len(parts) + 1):
        node = view.lookup_parts(parts[:index])
        if node is None or node.kind != "dir":
            return
        yield dir_entry("/".join(parts[:index]), mtime=_clamp(node.mtime, sde), uid=node.uid,
                        gid=node.gid, mode=node.mode)


def transfer_entries(items: list[Item], dest: str, *, workdir: str, view: MergedView,
                     sde: int, owner: Owner | None, chmod: int | None,
                     ignore: IgnoreMatcher | None, line: int | None,
                     git_modes: bool = False) -> list[TarEntry]:
    """The sorted entries of the layer a COPY/ADD of *items* to *dest* adds
    (*git_modes*: the context is a git checkout, see above)."""
    path = dest if dest.startswith("/") else posixpath.join(workdir or "/", dest)
    as_dir = dest.endswith("/") or len(items) > 1
    existing = view.lookup(path, follow=True)
    if existing is not None and existing.kind == "dir":
        as_dir = True
    if as_dir:
        target = "/".join(view.resolve(path))
    else:
        head, _, name = path.rstrip("/").rpartition("/")
        target = "/".join([*view.resolve(head or "/"), name])
    groups: list[Iterable[TarEntry]] = []
    dirs_created: list[str] = []
    try:
        for item in items:
            if _is_dir(item):
                dest_dir = target
                member = dest_dir
            elif as_dir:
                dest_dir = target
                member = f"{target}/{_basename(item)}" if target else _basename(item)
            else:
                dest_dir = target.rpartition("/")[0]
                member = target
            if not member:
                raise BuildError(f"cannot copy to {dest!r}: it names the root directory",
                                 line=line)
            if dest_dir and view.lookup_parts(dest_dir.split("/")) is None:
                dirs_created.append(dest_dir)
            entries = _item_entries(item, member, sde=sde, owner=owner, chmod=chmod,
                                    ignore=ignore, git_modes=git_modes)
            if _is_dir(item):
                groups.append(_strip_self(entries, member))
            else:
                groups.append(entries)
        uid, gid = owner or (0, 0)
        created = [dir_entry(d, mtime=sde, uid=uid, gid=gid) for d in dict.fromkeys(dirs_created)]
        parents = {e.path: e for m in [*dirs_created, target] for e in _parents(view, m, sde)}
        if existing is not None and existing.kind == "dir" and target:
            parents[target] = dir_entry(target, mtime=_clamp(existing.mtime, sde),
                                        uid=existing.uid, gid=existing.gid, mode=existing.mode)
        return merge_entries(parents.values(), created, *groups, parent_mtime=sde)
    except LayerError as exc:
        raise BuildError(str(exc), line=line) from exc


def match_view(view: MergedView, pattern: str, line: int | None = None) -> list[ViewItem]:
    """``COPY --from`` sources: *pattern* (wildcards allowed per component) in *view*."""
    found: list[list[str]] = [[]]
    for part in [p for p in posixpath.normpath("/" + pattern).split("/") if p]:
        if not any(ch in part for ch in "*?["):
            found = [[*parts, part] for parts in found]
            continue
        following = []
        for parts in found:
            names = view.children(view.resolve("/".join(parts)))
            following += [[*parts, name] for name in sorted(names, key=os.fsencode)
                          if fnmatch.fnmatchcase(name, part.replace("[^", "[!"))]
        found = following
    items = [ViewItem(view, tuple(parts)) for parts in found
             if view.lookup("/".join(parts)) is not None]
    if not items:
        raise BuildError(f"no files match {pattern!r} in the source stage", line=line)
    return items


def _strip_self(entries: Iterable[TarEntry], member: str) -> Iterator[TarEntry]:
    """Directory copies copy contents; the root's own entry (if any) is dropped."""
    for entry in entries:
        if member and entry.path == member:
            continue
        yield entry


_XZ_MAGIC = b"\xfd7zXZ\x00"
_BZ2_MAGIC = b"BZh"


def is_archive(path: Path) -> bool:
    """Whether ADD should unpack *path* (a tar, possibly gzip/bzip2/xz/zstd-compressed)."""
    if not path.is_file():
        return False
    with path.open("rb") as fh:
        head = fh.read(6)
    if not (head.startswith(_XZ_MAGIC) or head.startswith(_BZ2_MAGIC)):
        try:
            with tarfile.open(path, "r:*"):
                return True
        except (tarfile.TarError, OSError, EOFError):
            return _is_zstd_tar(path)
    try:
        with _decompressed(path, head) as raw, tarfile.open(fileobj=raw, mode="r|"):
            return True
    except (tarfile.TarError, OSError, EOFError, lzma.LZMAError):
        return False


def _decompressed(path: Path, head: bytes) -> IO[bytes]:
    if head.startswith(_XZ_MAGIC):
        return lzma.open(path, "rb")
    return bz2.open(path, "rb")


def _is_zstd_tar(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(4) == b"\x28\xb5\x2f\xfd"


def extract_archive(path: Path, dest: Path) -> None:
    """Unpack archive *path* into the new directory *dest* (safely: nothing escapes it)."""
    dest.mkdir(parents=True)
    with path.open("rb") as fh:
        head = fh.read(6)
    plain = path
    if head.startswith(_XZ_MAGIC) or head.startswith(_BZ2_MAGIC):
        plain = dest.with_name(dest.name + ".tar")
        with _decompressed(path, head) as src, plain.open("wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
    try:
        unpack_layer(plain, dest, whiteouts="apply")
    except LayerError as exc:
        raise BuildError(f"ADD {path.name}: {exc}") from exc
    finally:
        if plain != path:
            plain.unlink(missing_ok=True)
