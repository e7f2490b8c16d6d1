"""Apply a layer blob (gzip, zstd or plain tar) onto a directory, safely.

Spec notes (OCI image-spec v1.1, ``layer.md``):

* "Applying Changesets" / "Changeset over existing files": an existing directory
  meeting a directory entry keeps its content and takes the entry's attributes; in every
  other case the existing path is removed and recreated from the entry.
* "Whiteouts": ``.wh.<name>`` deletes ``<name>``; ``.wh..wh..opq`` hides everything
  the *lower* layers put in its directory, "regardless of the ordering in which the
  whiteout file was encountered"; whiteouts only apply to lower layers, never to paths
  created by the same layer, and are never materialised themselves.

Safety: member names that are absolute or contain ``..`` are refused with
:class:`~strata.image.errors.UnsafePathError`.  Symlinks already present in the
destination are resolved *inside* the root (an absolute target restarts at the root,
as in a ``chroot``); a resolution that would climb above the root is refused too.  The
last component of a member is never followed: it is replaced.  Hardlink targets are
resolved the same way, so a layer cannot link to a host file.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tarfile
from pathlib import Path
from typing import BinaryIO, Literal

from strata.image.compression import DECOMPRESSION_ERRORS, open_decompressed
from strata.image.entries import OPAQUE_WHITEOUT, WHITEOUT_PREFIX
from strata.image.errors import LayerError, UnsafePathError

__all__ = ["unpack_layer"]

_CHUNK = 1 << 20
_MAX_SYMLINK_HOPS = 40
# both: an overlay mounted in a user namespace (``userxattr``, the build jail) reads the
# user. one, one mounted on the host the trusted. one
_OVERLAY_OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")
_APPLY_ERRORS: tuple[type[Exception], ...] = (
    tarfile.TarError,
    EOFError,
    OSError,
    *DECOMPRESSION_ERRORS,
)


class _HashingReader:
    """File-like wrapper hashing every byte read: the layer's ``diff_id``."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.sha256 = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self.sha256.update(data)
        return data


def _member_parts(name: str) -> list[str]:
    if name.startswith("/"):
        raise UnsafePathError(f"layer member {name!r} is an absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafePathError(f"layer member {name!r} contains '..'")
    return parts


def _remove(path: str) -> None:
    st = os.lstat(path)
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


class _Applier:
    def __init__(
        self, root: Path, mode: Literal["apply", "overlay"], same_owner: bool, xattrs: bool
    ) -> None:
        self.root = os.fspath(root)
        self.mode = mode
        self.same_owner = same_owner
        self.xattrs = xattrs
        self.created: set[str] = set()
        self.created_ancestors: set[str] = set()
        self.deferred_dirs: list[tuple[str, int, float]] = []

    def abs(self, rel: str) -> str:
        return os.path.join(self.root, rel) if rel else self.root

    def resolve_dir(self, parts: list[str], name: str, *, create: bool = True) -> str:
        """Resolve *parts* to a real directory below the root, creating missing ones."""
        resolved: list[str] = []
        pending = list(reversed(parts))
        hops = 0
        while pending:
            part = pending.pop()
            if part in ("", "."):
                continue
            if part == "..":
                if not resolved:
                    raise UnsafePathError(f"layer member {name!r}: a symlink escapes the root")
                resolved.pop()
                continue
            current = os.path.join(self.root, *resolved, part)
            st = _lstat(current)
            if st is None:
                if not create:
                    raise LayerError(f"layer member {name!r}: {current} does not exist")
                os.mkdir(current, 0o755)
            elif stat.S_ISLNK(st.st_mode):
                hops += 1
                if hops > _MAX_SYMLINK_HOPS:
                    raise LayerError(f"layer member {name!r}: too many levels of symlinks")
                target = os.readlink(current)
                if target.startswith("/"):
                    resolved = []
                pending.extend(reversed(target.split("/")))
                continue
            elif not stat.S_ISDIR(st.st_mode):
                raise LayerError(
                    f"layer member {name!r}: {'/'.join([*resolved, part])} is not a directory"
                )
            resolved.append(part)
        return "/".join(resolved)

    def mark_created(self, rel: str) -> None:
        self.created.add(rel)
        parent = rel.rpartition("/")[0]
        while parent and parent not in self.created_ancestors:
            self.created_ancestors.add(parent)
            parent = parent.rpartition("/")[0]

    def prune(self, rel: str) -> None:
        """Remove lower-layer content at *rel*, keeping what this layer created."""
        path = self.abs(rel)
        st = _lstat(path)
        if st is None:
            return
        if rel not in self.created and rel not in self.created_ancestors:
            _remove(path)
        elif stat.S_ISDIR(st.st_mode):
            for child in sorted(os.listdir(path)):
                self.prune(f"{rel}/{child}" if rel else child)

    def apply(self, tf: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        parts = _member_parts(member.name)
        if not parts:
            return  # the root directory itself ("./"): its attributes are left alone
        *parent_parts, name = parts
        parent = self.resolve_dir(parent_parts, member.name)
        if name.startswith(WHITEOUT_PREFIX):
            self.whiteout(parent, name, member.name)
            return
        rel = f"{parent}/{name}" if parent else name
        path = self.abs(rel)
        existing = _lstat(path)
        if existing is not None and not (member.isdir() and stat.S_ISDIR(existing.st_mode)):
            _remove(path)
            existing = None
        self.create(tf, member, path, existing is not None)
        self.mark_created(rel)

    def whiteout(self, parent: str, name: str, member_name: str) -> None:
        if name == OPAQUE_WHITEOUT:
            if self.mode == "overlay":
                for xattr in _OVERLAY_OPAQUE_XATTRS:
                    os.setxattr(self.abs(parent), xattr, b"y")
            else:
                for child in sorted(os.listdir(self.abs(parent))):
                    self.prune(f"{parent}/{child}" if parent else child)
            return
        target = name[len(WHITEOUT_PREFIX) :]
        if target in ("", ".", ".."):
            raise UnsafePathError(f"invalid whiteout member {member_name!r}")
        rel = f"{parent}/{target}" if parent else target
        self.prune(rel)
        if self.mode == "overlay" and _lstat(self.abs(rel)) is None:
            os.mknod(self.abs(rel), stat.S_IFCHR | 0o600, os.makedev(0, 0))

    def create(self, tf: tarfile.TarFile, member: tarfile.TarInfo, path: str, exists: bool) -> None:
        if member.isdir():
            if not exists:
                os.mkdir(path, 0o700)
        elif member.isreg():
            fd = os.open(
                path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
            )
            with open(fd, "wb") as out:
                src = tf.extractfile(member)
                if src is not None:
                    shutil.copyfileobj(src, out, _CHUNK)
        elif member.issym():
            os.symlink(member.linkname, path)
        elif member.islnk():
            link_parts = _member_parts(member.linkname)
            target_st = None
            if link_parts:
                *link_parent, link_name = link_parts
                link_dir = self.resolve_dir(link_parent, member.name, create=False)
                target = self.abs(f"{link_dir}/{link_name}" if link_dir else link_name)
                target_st = _lstat(target)
            if target_st is None or stat.S_ISDIR(target_st.st_mode):
                raise LayerError(
                    f"{member.name}: hardlink target {member.linkname!r} "
                    "is not an existing non-directory"
                )
            os.link(target, path, follow_symlinks=False)
            return  # the inode's attributes belong to the target entry
        elif member.ischr() or member.isblk():
            kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
            try:
                os.mknod(path, kind | 0o600, os.makedev(member.devmajor, member.devminor))
            except PermissionError as exc:
                raise LayerError(f"{member.name}: creating device nodes needs CAP_MKNOD") from exc
        elif member.isfifo():
            os.mkfifo(path, 0o600)
        else:
            raise LayerError(f"{member.name}: unsupported tar member type {member.type!r}")
        self.set_attributes(member, path)

    def set_attributes(self, member: tarfile.TarInfo, path: str) -> None:
        if self.same_owner:
            os.chown(path, member.uid, member.gid, follow_symlinks=False)
        if self.xattrs:
            for key, value in sorted(member.pax_headers.items()):
                if key.startswith("SCHILY.xattr."):
                    os.setxattr(
                        path,
                        key[len("SCHILY.xattr.") :],
                        value.encode("utf-8", "surrogateescape"),
                        follow_symlinks=False,
                    )
        if member.isdir():
            # Children change a directory's mtime, and a read-only mode could block
            # them: directories get mode and times once the whole layer is applied.
            self.deferred_dirs.append((path, member.mode, member.mtime))
            return
        if not member.issym():
            os.chmod(path, member.mode)
        os.utime(path, (member.mtime, member.mtime), follow_symlinks=False)

    def finish(self) -> None:
        for path, mode, mtime in reversed(self.deferred_dirs):
            try:
                os.chmod(path, mode)
                os.utime(path, (mtime, mtime), follow_symlinks=False)
            except FileNotFoundError:
                continue  # removed later in the same layer by a whiteout


def unpack_layer(
    blob_path: Path,
    dest_root: Path,
    *,
    whiteouts: Literal["apply", "overlay"] = "apply",
    same_owner: bool | None = None,
    xattrs: bool = False,
) -> str:
    """Apply the layer at *blob_path* onto *dest_root* and return its ``diff_id``.

    The compression is sniffed from the magic bytes.  ``whiteouts="apply"`` performs the
    deletions on *dest_root* (a merged root filesystem); ``"overlay"`` instead records
    them the way overlayfs stores them in a layer directory (char device 0/0,
    ``trusted.overlay.opaque=y`` and ``user.overlay.opaque=y``) so *dest_root* can serve
    as a ``lowerdir``.
    *same_owner* (default: when running as root) restores uid/gid; *xattrs* restores
    ``SCHILY.xattr.*`` records.  The returned ``sha256:`` digest covers the whole
    uncompressed stream, for comparison with the image config's ``rootfs.diff_ids``.
    """
    root = Path(dest_root)
    if not root.is_dir():
        raise LayerError(f"{dest_root}: destination is not a directory")
    applier = _Applier(
        root.resolve(), whiteouts, os.geteuid() == 0 if same_owner is None else same_owner, xattrs
    )
    with open_decompressed(Path(blob_path)) as raw:
        reader = _HashingReader(raw)
        try:
            with tarfile.open(fileobj=reader, mode="r|") as tf:  # type: ignore[call-overload]
                for member in tf:
                    applier.apply(tf, member)
            while reader.read(_CHUNK):
                pass
        except _APPLY_ERRORS as exc:
            raise LayerError(f"{blob_path}: cannot apply layer: {exc}") from exc
    applier.finish()
    return f"sha256:{reader.sha256.hexdigest()}"
