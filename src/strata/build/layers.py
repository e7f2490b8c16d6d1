"""The layer stack of a stage while it is being built.

Each :class:`Slot` is one layer: how its filesystem can be looked at (:mod:`fsview`), the
directory it is unpacked in (if any; an overlay lower directory) and its blob -- for new
layers a future, because blobs are written (tar, sha256, compress, sha256) on worker
threads while the next steps run.  ``sha256`` and ISA-L release the GIL, so a ``RUN`` and
the compression of the previous step's layer really overlap.

A ``COPY`` layer is never unpacked unless a later ``RUN`` needs it as a lower directory;
then its blob is applied (``unpack_layer(..., whiteouts="overlay")``) -- the blob, not the
context, so what runs is exactly what is shipped.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from strata.build.errors import BuildError
from strata.build.fsview import DirLayer, EntryLayer, FsLayer
from strata.build.remote import BlobRef
from strata.build.scratch import Scratch
from strata.image.layer import Compression, LayerError, TarEntry, unpack_layer, write_layer

__all__ = ["LayerWriter", "Slot", "stamp_entries", "stamp_tree"]


@dataclass
class Slot:
    fs: FsLayer
    directory: Path | None
    blob: BlobRef | Future[BlobRef | None]
    history: dict[str, Any] | None = field(default=None)

    def result(self) -> BlobRef | None:
        """The written blob, or None for a layer that turned out empty."""
        if isinstance(self.blob, BlobRef):
            return self.blob
        return self.blob.result()


class _Counting:
    def __init__(self, entries: Iterable[TarEntry]) -> None:
        self._entries = entries
        self.count = 0

    def __iter__(self) -> Iterator[TarEntry]:
        for entry in self._entries:
            self.count += 1
            yield entry


def stamp_entries(entries: Iterable[TarEntry], sde: int) -> list[TarEntry]:
    """*entries* with every mtime set to *sde*."""
    return [entry if entry.mtime == sde else dataclasses.replace(entry, mtime=sde)
            for entry in entries]


def stamp_tree(root: Path, sde: int) -> None:
    """Set the mtime (and atime) of everything below *root*, and of *root*, to *sde*
    (symlinks themselves, never their targets)."""
    times = (sde, sde)
    for top, dirs, files in os.walk(root):
        for name in [*files, *dirs]:
            os.utime(os.path.join(top, name), times, follow_symlinks=False)
    os.utime(root, times, follow_symlinks=False)


class LayerWriter:
    """Writes layer blobs into ``work/blobs`` on a small thread pool; every timestamp in
    them is *sde* (``SOURCE_DATE_EPOCH``)."""

    def __init__(self, work: Path, *, sde: int, compression: Compression = "gzip",
                 level: int = 1, workers: int = 2,
                 on_blob: Callable[[BlobRef], None] | None = None) -> None:
        self.work = work
        self.on_blob = on_blob  # told of each blob written (on the worker thread)
        self.sde = sde
        self.compression = compression
        self.level = level
        self.blobs = work / "blobs"
        self.unpacked = work / "layers"
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.unpacked.mkdir(parents=True, exist_ok=True)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="layer")
        self._counter = itertools.count()
        self._lock = threading.Lock()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _next(self) -> int:
        with self._lock:
            return next(self._counter)

    def _write(self, entries: Iterable[TarEntry], number: int, keep_empty: bool
               ) -> BlobRef | None:
        counting = _Counting(entries)
        path = self.blobs / f"layer-{number}"
        try:
            layer = write_layer(counting, path, compression=self.compression, level=self.level)
        except LayerError as exc:
            raise BuildError(f"writing a layer failed: {exc}") from exc
        if not counting.count and not keep_empty:
            path.unlink()
            return None
        blob = BlobRef(layer.digest, layer.size, layer.media_type, layer.diff_id, layer.path)
        if self.on_blob is not None:
            self.on_blob(blob)
        return blob

    def submit(self, entries: Iterable[TarEntry], *, keep_empty: bool = False
               ) -> Future[BlobRef | None]:
        """Write *entries* (consumed on the worker thread) as the next layer blob."""
        return self._pool.submit(self._write, entries, self._next(), keep_empty)

    def entry_slot(self, entries: list[TarEntry]) -> Slot:
        """A layer known by its entries (COPY, ADD, WORKDIR, the help file)."""
        stamped = stamp_entries(entries, self.sde)
        return Slot(EntryLayer(stamped), None, self.submit(stamped, keep_empty=True))

    def dir_slot(self, directory: Path, entries: Callable[[], Iterable[TarEntry]]) -> Slot:
        """A layer whose overlay-format directory already exists (a RUN's upper).  Its
        timestamps are stamped on disk first; *entries* then lists it."""
        stamp_tree(directory, self.sde)
        return Slot(DirLayer(directory), directory, self.submit(entries()))

    def materialize(self, slot: Slot, scratch: Scratch | None = None) -> Path:
        """The slot's overlay-format directory, unpacking its blob if needed (where
        *scratch* places it, else below ``work/layers``)."""
        if slot.directory is not None:
            return slot.directory
        blob = slot.result()
        name = f"u{self._next()}"
        target = self.unpacked / name if scratch is None else scratch.place(f"layers/{name}")
        target.mkdir(mode=0o755, parents=True)
        if blob is not None:
            try:
                unpack_layer(blob.path, target, whiteouts="overlay")
            except LayerError as exc:
                raise BuildError(f"unpacking layer {blob.digest} failed: {exc}") from exc
        if scratch is not None:
            scratch.charge(target)
        slot.directory = target
        slot.fs = DirLayer(target)
        return target
