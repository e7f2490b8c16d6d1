"""A read-only view of an image's root filesystem through its stack of layers.

Each layer is either a directory in overlayfs format (an unpacked base layer, or the
upper directory a ``RUN`` wrote: deletions are char devices 0/0, opaque directories
carry ``trusted.overlay.opaque=y``) or, until something needs it on disk, the entry list
of a ``COPY``/``ADD`` layer that was only ever written as a blob.  :class:`MergedView`
answers lookups the way an overlay mount of the stack would (kernel
``Documentation/filesystems/overlayfs.rst``: an upper non-directory hides everything
below it, whiteouts delete, opaque directories hide lower content) without mounting
anything -- used to resolve ``COPY`` destinations through symlinks, read ``/etc/passwd``
for ``USER``/``--chown``, copy files out of earlier stages and list OS packages.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, Protocol

from strata.build.errors import BuildError
from strata.image.layer import OPAQUE_WHITEOUT, WHITEOUT_PREFIX, TarEntry

__all__ = ["DirLayer", "EntryLayer", "FsLayer", "MergedView", "Node", "split_path"]

NodeKind = Literal["file", "dir", "symlink", "char", "block", "fifo", "whiteout"]

_OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")  # the jail: userxattr
_MAX_HOPS = 40
_ABSENT: Literal["absent"] = "absent"
_HIDDEN: Literal["hidden"] = "hidden"


@dataclass(frozen=True, slots=True)
class Node:
    """Metadata of one path in one layer, and where its content is."""

    kind: NodeKind
    mode: int = 0o755
    uid: int = 0
    gid: int = 0
    mtime: int = 0
    size: int = 0
    linkname: str = ""
    devmajor: int = 0
    devminor: int = 0
    source: Path | None = None
    data: bytes | None = None
    opaque: bool = False

    def read(self) -> bytes:
        if self.data is not None:
            return self.data
        if self.source is not None:
            return self.source.read_bytes()
        return b""


_ROOT = Node("dir")


def split_path(path: str) -> list[str]:
    """Container path -> components; ``..`` is resolved lexically, never above ``/``."""
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return parts


class FsLayer(Protocol):
    def node(self, rel: str) -> Node | None:
        """The node at *rel* ("" is the layer root) in this layer alone, or None."""
        ...

    def names(self, rel: str) -> list[str]:
        """Names directly below directory *rel* in this layer (whiteouts included)."""
        ...


class DirLayer:
    """A layer unpacked in overlayfs format at ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def node(self, rel: str) -> Node | None:
        if not rel:
            return replace(_ROOT, opaque=_is_opaque(os.fspath(self.root)))
        path = os.path.join(self.root, rel)
        try:
            st = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        fmt = stat.S_IFMT(st.st_mode)
        if fmt == stat.S_IFCHR and st.st_rdev == 0:
            return Node("whiteout")
        kind: NodeKind
        size, linkname, source, opaque = 0, "", None, False
        if fmt == stat.S_IFDIR:
            kind, opaque = "dir", _is_opaque(path)
        elif fmt == stat.S_IFREG:
            kind, size, source = "file", st.st_size, Path(path)
        elif fmt == stat.S_IFLNK:
            kind, linkname = "symlink", os.readlink(path)
        elif fmt in (stat.S_IFCHR, stat.S_IFBLK):
            kind = "char" if fmt == stat.S_IFCHR else "block"
        elif fmt == stat.S_IFIFO:
            kind = "fifo"
        else:
            return None  # sockets are not part of images
        dev = st.st_rdev if kind in ("char", "block") else 0
        return Node(kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, int(st.st_mtime),
                    size, linkname, os.major(dev), os.minor(dev), source, None, opaque)

    def names(self, rel: str) -> list[str]:
        try:
            return os.listdir(os.path.join(self.root, rel) if rel else self.root)
        except (FileNotFoundError, NotADirectoryError):
            return []


def _is_opaque(path: str) -> bool:
    for name in _OPAQUE_XATTRS:
        try:
            if os.getxattr(path, name, follow_symlinks=False) == b"y":
                return True
        except OSError:
            pass
    return False


class EntryLayer:
    """A layer known by its tar entries (a ``COPY`` layer not unpacked anywhere)."""

    def __init__(self, entries: Iterable[TarEntry]) -> None:
        self._nodes: dict[str, Node] = {}
        self._children: dict[str, list[str]] = {"": []}
        opaque_dirs: list[str] = []
        for entry in entries:
            parent, _, name = entry.path.rpartition("/")
            if name == OPAQUE_WHITEOUT:
                opaque_dirs.append(parent)
                continue
            if name.startswith(WHITEOUT_PREFIX):
                target = name[len(WHITEOUT_PREFIX) :]
                path = f"{parent}/{target}" if parent else target
                self._add(path, Node("whiteout"))
                continue
            self._add(entry.path, self._node_of(entry))
        for path in opaque_dirs:
            node = self._nodes.get(path) if path else _ROOT
            if node is not None:
                self._nodes[path] = replace(node, opaque=True)

    def _node_of(self, entry: TarEntry) -> Node:
        if entry.kind == "hardlink":
            target = self._nodes.get(entry.linkname)
            if target is None:
                raise BuildError(f"{entry.path}: hardlink to unknown {entry.linkname!r}")
            return target
        return Node(entry.kind, entry.mode, entry.uid, entry.gid, entry.mtime, entry.size,
                    entry.linkname, entry.devmajor, entry.devminor, entry.source, entry.data)

    def _add(self, path: str, node: Node) -> None:
        if path not in self._nodes:
            self._children.setdefault(path.rpartition("/")[0], []).append(
                path.rpartition("/")[2])
        self._nodes[path] = node

    def node(self, rel: str) -> Node | None:
        if not rel:
            return self._nodes.get("", _ROOT)
        return self._nodes.get(rel)

    def names(self, rel: str) -> list[str]:
        return list(self._children.get(rel, ()))


class MergedView:
    """What a process would see in an overlay of ``layers`` (topmost first)."""

    def __init__(self, layers: Sequence[FsLayer]) -> None:
        self.layers = list(layers)

    @staticmethod
    def _status(layer: FsLayer, parts: Sequence[str]) -> Node | Literal["absent", "hidden"]:
        root = layer.node("")
        opaque = root is not None and root.opaque
        if not parts:
            return root or _ROOT
        for index in range(len(parts)):
            node = layer.node("/".join(parts[: index + 1]))
            if node is None:
                return _HIDDEN if opaque else _ABSENT
            if node.kind == "whiteout":
                return _HIDDEN
            if index == len(parts) - 1:
                return node
            if node.kind != "dir":
                return _HIDDEN
            opaque = opaque or node.opaque
        raise AssertionError("unreachable")

    def lookup_parts(self, parts: Sequence[str]) -> Node | None:
        if not parts:
            return _ROOT
        for layer in self.layers:
            status = self._status(layer, parts)
            if status == _ABSENT:
                continue
            if status == _HIDDEN:
                return None
            assert isinstance(status, Node)
            return status
        return None

    def lookup(self, path: str, *, follow: bool = False) -> Node | None:
        """The node at container *path* (symlinks in parents followed; the last one too
        when *follow*)."""
        return self.lookup_parts(self.resolve(path, follow_last=follow))

    def children(self, parts: Sequence[str]) -> dict[str, Node]:
        """The merged directory listing of *parts* (empty if it is not a directory)."""
        seen: dict[str, Node | None] = {}
        rel = "/".join(parts)
        for layer in self.layers:
            status = self._status(layer, parts)
            if status == _ABSENT:
                continue
            if status == _HIDDEN or not isinstance(status, Node) or status.kind != "dir":
                break
            for name in layer.names(rel):
                if name not in seen:
                    child = layer.node(f"{rel}/{name}" if rel else name)
                    seen[name] = None if child is None or child.kind == "whiteout" else child
            if status.opaque:
                break
        return {name: node for name, node in seen.items() if node is not None}

    def resolve(self, path: str, *, follow_last: bool = True) -> list[str]:
        """Canonical components of *path*, following symlinks inside the root (an absolute
        target restarts at ``/``; ``..`` never climbs above it).  Missing components are
        kept as written."""
        pending = list(reversed(split_path(path)))
        resolved: list[str] = []
        hops = 0
        while pending:
            part = pending.pop()
            if part == "..":
                if resolved:
                    resolved.pop()
                continue
            if part in ("", "."):
                continue
            candidate = [*resolved, part]
            node = self.lookup_parts(candidate)
            if node is not None and node.kind == "symlink" and (pending or follow_last):
                hops += 1
                if hops > _MAX_HOPS:
                    raise BuildError(f"{path}: too many levels of symbolic links")
                if node.linkname.startswith("/"):
                    resolved = []
                pending.extend(reversed([p for p in node.linkname.split("/") if p]))
                continue
            resolved.append(part)
        return resolved

    def read(self, path: str, limit: int = 64 << 20) -> bytes | None:
        """Content of the regular file at *path* (symlinks followed), or None."""
        node = self.lookup(path, follow=True)
        if node is None or node.kind != "file" or node.size > limit:
            return None
        return node.read()

    def walk(self, parts: Sequence[str]) -> Iterator[tuple[str, Node]]:
        """``(relative path, node)`` for everything below directory *parts*, sorted
        bytewise per component (directories before their contents)."""
        yield from self._walk(list(parts), "")

    def _walk(self, parts: list[str], rel: str) -> Iterator[tuple[str, Node]]:
        listing = self.children(parts)
        for name in sorted(listing, key=os.fsencode):
            node = listing[name]
            child_rel = f"{rel}/{name}" if rel else name
            yield child_rel, node
            if node.kind == "dir":
                yield from self._walk([*parts, name], child_rel)
