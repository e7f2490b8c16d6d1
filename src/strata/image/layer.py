"""Write reproducible OCI layer blobs: tar stream -> compressor -> file, hashed on the fly.

:func:`write_layer` serialises :class:`~strata.image.entries.TarEntry` values into a tar
stream, hashes it (the ``diff_id``, OCI image-spec ``config.md`` ``rootfs.diff_ids``),
compresses it, hashes the compressed bytes (the descriptor ``digest``,
``descriptor.md``) and writes them to disk -- in one pass, in fixed 1 MiB blocks, so no
file is read twice and no layer is ever held in memory.

Tar format: POSIX.1-2001 **pax**, encoded by :mod:`strata.image.tarheader`.  pax is
the standardised format (GNU's ``././@LongLink`` members are a vendor extension), it is
what BuildKit and containerd write, and it degrades to a plain ustar header whenever a
member fits (name <= 100 ASCII bytes, ids and sizes within octal limits), adding an
extended header only when needed -- long or non-ASCII names and link targets, large ids
or sizes, and the ``SCHILY.xattr.*`` records the OCI ``layer.md`` "File Attributes"
section asks for.  Nothing variable goes into the headers: whole-second mtimes, no
``atime``/``ctime``, empty ``uname``/``gname``.  The archive ends with two zero blocks,
as Go's ``archive/tar`` writes it.

This module is the public facade of :mod:`strata.image`: it re-exports the entry
constructors, the tree scanners and :func:`~strata.image.unpack.unpack_layer`.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from strata.image.compression import MEDIA_TYPES, Compression, Compressor, make_compressor
from strata.image.entries import (
    OPAQUE_WHITEOUT,
    WHITEOUT_PREFIX,
    EntryKind,
    TarEntry,
    data_entry,
    dir_entry,
    entry_sort_key,
    file_entry,
    merge_entries,
    opaque_entry,
    symlink_entry,
    whiteout_entry,
)
from strata.image.errors import LayerError, UnsafePathError
from strata.image.scan import OwnerSpec, PathFilter, diff_tree, scan_tree
from strata.image.tarheader import encode_header
from strata.image.unpack import unpack_layer

__all__ = [
    "BLOCK_SIZE",
    "MEDIA_TYPES",
    "OPAQUE_WHITEOUT",
    "WHITEOUT_PREFIX",
    "Compression",
    "Layer",
    "LayerError",
    "OwnerSpec",
    "PathFilter",
    "TarEntry",
    "UnsafePathError",
    "data_entry",
    "diff_tree",
    "dir_entry",
    "entry_sort_key",
    "file_entry",
    "merge_entries",
    "opaque_entry",
    "scan_tree",
    "symlink_entry",
    "unpack_layer",
    "whiteout_entry",
    "write_layer",
]

#: Every compressor call gets exactly this many bytes (except the last): ISA-L's output
#: depends on input chunking, so fixed blocks are part of the reproducibility contract.
BLOCK_SIZE = 1 << 20

_TAR_END = b"\0" * (2 * tarfile.BLOCKSIZE)


@dataclass(frozen=True, slots=True)
class Layer:
    """A written layer blob and the identities the image manifest/config need."""

    digest: str
    diff_id: str
    size: int
    media_type: str
    path: Path


class _BlockWriter:
    """Tar bytes in; fixed-size blocks hashed, compressed, hashed again and written."""

    def __init__(self, out: BinaryIO, compressor: Compressor | None) -> None:
        self._out = out
        self._compressor = compressor
        self._block = bytearray(BLOCK_SIZE)
        self._view = memoryview(self._block)
        self._fill = 0
        self.diff = hashlib.sha256()
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        pos = 0
        while pos < len(data):
            count = min(BLOCK_SIZE - self._fill, len(data) - pos)
            self._view[self._fill : self._fill + count] = data[pos : pos + count]
            self._fill += count
            pos += count
            if self._fill == BLOCK_SIZE:
                self._push()

    def copy_from(self, src: io.FileIO, size: int, name: str) -> None:
        """Read exactly *size* bytes of *src* straight into the block buffer."""
        remaining = size
        while remaining:
            want = min(BLOCK_SIZE - self._fill, remaining)
            got = src.readinto(self._view[self._fill : self._fill + want])
            if not got:
                raise LayerError(f"{name}: file shrank while the layer was being written")
            self._fill += got
            remaining -= got
            if self._fill == BLOCK_SIZE:
                self._push()

    def _push(self) -> None:
        block = self._view[: self._fill]
        self.diff.update(block)
        if self._compressor is None:  # uncompressed: the blob is the tar, hash it once
            self._out.write(block)
            self.size += len(block)
        else:
            self._emit(self._compressor.compress(block))
        self._fill = 0

    def _emit(self, data: bytes) -> None:
        if data:
            self.digest.update(data)
            self._out.write(data)
            self.size += len(data)

    def finish(self) -> None:
        if self._fill:
            self._push()
        if self._compressor is None:
            self.digest = self.diff
        else:
            self._emit(self._compressor.flush())


def _write_content(writer: _BlockWriter, entry: TarEntry) -> None:
    if entry.data is not None:
        writer.write(entry.data)
    elif entry.source is not None:
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(entry.source, flags)
        except OSError as exc:
            raise LayerError(f"{entry.source}: cannot open: {exc}") from exc
        with open(fd, "rb", buffering=0) as src:
            if os.fstat(fd).st_size != entry.size:
                raise LayerError(f"{entry.source}: size changed since it was scanned")
            writer.copy_from(src, entry.size, os.fspath(entry.source))
            if os.fstat(fd).st_size != entry.size:
                raise LayerError(f"{entry.source}: file grew while the layer was being written")
    padding = -entry.size % tarfile.BLOCKSIZE
    if padding:
        writer.write(b"\0" * padding)


def write_layer(
    entries: Iterable[TarEntry],
    out_path: Path,
    *,
    compression: Compression = "gzip",
    level: int = 1,
) -> Layer:
    """Serialise *entries* (in the order given) into a layer blob at *out_path*.

    Use entries from :func:`scan_tree`, :func:`diff_tree` or :func:`merge_entries`,
    which are already sorted.  Duplicate member names (``layer.md``, "Distributable
    Format": MUST NOT) and hardlinks to members not written earlier are refused.  The
    blob is written to a temporary file beside *out_path* and renamed into place, so a
    failed build never leaves a truncated blob under the final name.
    """
    compressor = None if compression == "none" else make_compressor(compression, level)
    out_path = Path(out_path)
    fd, tmp_name = tempfile.mkstemp(dir=out_path.parent, prefix=f".{out_path.name}.", suffix=".tmp")
    try:
        with open(fd, "wb") as out:
            os.fchmod(fd, 0o644)
            writer = _BlockWriter(out, compressor)
            seen: dict[str, EntryKind] = {}
            for entry in entries:
                if entry.path in seen:
                    raise LayerError(f"duplicate layer member {entry.path!r}")
                if entry.kind == "hardlink" and seen.get(entry.linkname, "dir") == "dir":
                    raise LayerError(
                        f"{entry.path}: hardlink target {entry.linkname!r} is not an earlier "
                        "non-directory member"
                    )
                seen[entry.path] = entry.kind
                writer.write(encode_header(entry))
                if entry.kind == "file":
                    _write_content(writer, entry)
            writer.write(_TAR_END)
            writer.finish()
        os.replace(tmp_name, out_path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return Layer(
        digest=f"sha256:{writer.digest.hexdigest()}",
        diff_id=f"sha256:{writer.diff.hexdigest()}",
        size=writer.size,
        media_type=MEDIA_TYPES[compression],
        path=out_path,
    )
