"""Filesystem blob store: ``blobs/<alg>/<2 hex>/<hex>`` and ``uploads/<id>``.

Uploads are appended in place; committing fsyncs the file, renames it atomically into its
content address and (once per metadata commit, see ``persist_placed``) fsyncs the directory,
so a crash leaves either no blob or a whole one. Every directory is created 0700 and every
file 0600 (:mod:`strata.storage.private`), whatever the umask.

A session is one file from its start: ``uploads/<id>`` is created empty by ``upload_start``
with its owner (the repository) in an extended attribute, and that same file is renamed into
place, so a blob costs one inode and leaves no deleted one behind. Creating an inode is the
dear part of a small push on ext4 (the allocator skips every recently deleted inode of its
group), and an owner file beside the bytes, created by the POST and deleted by the PUT, had
doubled it. On a filesystem without user extended attributes (and for sessions an older
strata started) the owner is a file ``uploads/<id>.owner`` and the bytes file is created by
the first write, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import errno
import fcntl
import os
import re
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from strata.oci.digest import Digest
from strata.storage import direct
from strata.storage.base import UploadBusy
from strata.storage.direct import pwrite_all as _pwrite_all  # module-level: tests spy on it
from strata.storage.private import FILE_MODE, fsync_dir, private_dir, private_dirs

_UPLOAD_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_READ_CHUNK = 1 << 20
_SYNC_EVERY = 4 << 20
_SYNC_TAIL_FROM = 1 << 20
_IOV_MAX = min(os.sysconf("SC_IOV_MAX"), 1024) if hasattr(os, "sysconf") else 16
_OWNER_ATTR = "user.strata.owner"  # a session's repository, on its bytes file
_NO_XATTRS = frozenset({errno.ENOTSUP, errno.EOPNOTSUPP})
_NO_OWNER_ATTR = _NO_XATTRS | {errno.ENODATA}


def _writev_all(fd: int, pieces: Sequence[bytes]) -> int:
    """writev in groups the kernel accepts (IOV_MAX), finishing short writes; the byte count."""
    total = 0
    for i in range(0, len(pieces), _IOV_MAX):
        group = pieces[i:i + _IOV_MAX]
        size = sum(len(p) for p in group)
        done = os.writev(fd, group)
        if done < size:  # rare (signals, a full disk): finish piece by piece
            rest = memoryview(b"".join(group))[done:]
            while rest:
                rest = rest[os.write(fd, rest):]
        total += size
    return total


def _lock_upload(fd: int) -> None:
    """Take the upload's one writer lock (``flock`` on its bytes file: across the workers of
    a data dir and the requests of one), or raise UploadBusy. Without it, two PATCHes at one
    offset both wrote into the file and the loser's bytes stayed in it, under a digest they do
    not match; the lock ends with the descriptor."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise UploadBusy("another request is writing to this upload") from None


def _load_sync_file_range() -> Callable[[int, int, int], None] | None:
    """Linux ``sync_file_range(fd, offset, n, SYNC_FILE_RANGE_WRITE)``: start writing a range
    back without waiting for it and without a journal commit or a disk cache flush (which an
    ``fdatasync`` per range would cost); None where libc has no such call."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        call = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    call.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    call.restype = ctypes.c_int

    def start_writeback(fd: int, offset: int, nbytes: int) -> None:
        if call(fd, offset, nbytes, 2) != 0:  # SYNC_FILE_RANGE_WRITE
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))

    return start_writeback


_START_WRITEBACK = _load_sync_file_range()


def _reopen(path: str) -> int:
    """A descriptor of its own for the write-back thread (the writer may close its own first):
    opened anew, not duplicated, since a duplicate would hold the writer's lock (``flock``
    belongs to the open file) past the request."""
    return os.open(path, os.O_RDONLY)


def _writeback_copy(fd: int, offset: int, nbytes: int) -> None:
    """Start writing back ``[offset, offset + nbytes)`` of a descriptor of its own, then close
    it. Only a head start: an error here shows again in
    the fsync before the blob is placed, so it is not raised."""
    try:
        if _START_WRITEBACK is not None:
            _START_WRITEBACK(fd, offset, nbytes)
        else:
            os.fdatasync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


_IO_THREADS = 8


def _read_ahead(fd: int) -> None:
    """Ask the kernel to read a whole file into the page cache, then close the descriptor."""
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
    except OSError:
        pass  # only a head start for the first GET
    finally:
        os.close(fd)


def _subdirs(path: str) -> list[str]:
    """Names of the directories in *path* (none if it is not one)."""
    try:
        with os.scandir(path) as it:
            return [e.name for e in it if e.is_dir(follow_symlinks=False)]
    except (FileNotFoundError, NotADirectoryError):
        return []


class FileUploadWriter:
    """An upload body written from one thread (``BlockingUploadWriter``): ``pwrite`` through
    the page cache, its write-back started every ``_SYNC_EVERY`` bytes as it goes; or, for a
    store writing directly, each aligned buffer with ``O_DIRECT`` (the first buffer, when the
    body starts off an ``ALIGN`` boundary, and the unaligned tail go through the page cache)."""

    def __init__(self, path: str, offset: int, direct_io: bool) -> None:
        self._fd = os.open(path, os.O_WRONLY)
        self._dfd = -1
        try:
            _lock_upload(self._fd)
            os.ftruncate(self._fd, offset)
            if direct_io:
                self._dfd = os.open(path, os.O_WRONLY | os.O_DIRECT)
        except BaseException:
            os.close(self._fd)
            raise
        self._offset = offset
        self._end = offset
        self._synced_to = offset

    def first_fill(self, size: int) -> int:
        return size - self._offset % direct.ALIGN if self._dfd >= 0 else size

    def write(self, data: memoryview, pos: int) -> None:
        end = pos + len(data)
        if self._dfd >= 0 and pos % direct.ALIGN == 0:
            n = direct.aligned(len(data))
            _pwrite_all(self._dfd, data[:n], pos)
            data, pos = data[n:], pos + n
        _pwrite_all(self._fd, data, pos)
        self._end = end
        if self._dfd < 0 and end - self._synced_to >= _SYNC_EVERY:
            self._start_writeback()

    def _start_writeback(self) -> None:
        if _START_WRITEBACK is not None:
            with contextlib.suppress(OSError):  # a head start only (see _writeback_copy)
                _START_WRITEBACK(self._fd, self._synced_to, self._end - self._synced_to)
        self._synced_to = self._end

    def finish(self) -> int:
        if self._dfd < 0 and self._end - self._offset >= _SYNC_TAIL_FROM:
            self._start_writeback()  # the tail too (see _write_buffered)
        return self._end

    def abort(self) -> None:
        os.ftruncate(self._fd, self._offset)

    def close(self) -> None:
        for fd in (self._fd, self._dfd):
            if fd >= 0:
                os.close(fd)
        self._fd = self._dfd = -1


class FilesystemBlobStore:
    def __init__(self, root: Path, direct_io: bool = False) -> None:
        """``direct_io``: write upload bodies of ``direct.DIRECT_FROM`` bytes and more with
        ``O_DIRECT`` (see :mod:`strata.storage.direct`) where the filesystem allows. Off by
        default: on a quiet machine it gained nothing for 256 MiB pushes, and the first GET
        of a blob written so reads the disk (0.2x distribution right after a 1 GiB push)."""
        self.root = root
        self._blobs = root / "blobs"
        self._uploads = root / "uploads"
        private_dir(self._blobs)
        private_dir(self._uploads)
        # Per-blob and per-upload paths are plain strings: pathlib interns every component it
        # parses (sys.intern), so each new digest and upload id went through the interpreter's
        # table of interned strings, whose ~2 MiB array was reallocated every few ten thousand
        # requests, each time as a new block at the top of the heap (issue #18: the soak).
        self._blobs_dir = os.fspath(self._blobs)
        self._uploads_dir = os.fspath(self._uploads)
        self._direct = direct_io and direct.supported(self._uploads)
        # owners in an extended attribute of the bytes file until the filesystem refuses one
        self.owner_xattr = hasattr(os, "setxattr")
        self._pool: tuple[int, ThreadPoolExecutor] | None = None

    def _io_threads(self) -> ThreadPoolExecutor:
        """Threads for the store's blocking calls made from other threads: directory fsyncs,
        read-ahead. The store is made before ``strata serve`` forks its workers and a pool
        does not survive a fork: each process makes its own on first use."""
        if self._pool is None or self._pool[0] != os.getpid():
            self._pool = (os.getpid(),
                          ThreadPoolExecutor(_IO_THREADS, thread_name_prefix="blob-io"))
        return self._pool[1]

    @property
    def writes_direct(self) -> bool:
        """Whether big upload bodies go to disk with ``O_DIRECT``, past the page cache."""
        return self._direct

    # -- committed blobs -------------------------------------------------------------------
    def blob_path(self, digest: Digest) -> str:
        encoded = digest.encoded
        return f"{self._blobs_dir}/{digest.algorithm}/{encoded[:2]}/{encoded}"

    async def read(
        self, digest: Digest, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        # Opening a local file on the loop, as a Path's open did before: microseconds.
        with open(self.blob_path(digest), "rb") as f:  # noqa: ASYNC230
            f.seek(start)
            remaining = None if end is None else end - start
            while remaining is None or remaining > 0:
                n = _READ_CHUNK if remaining is None else min(_READ_CHUNK, remaining)
                data = f.read(n)
                if not data:
                    break
                if remaining is not None:
                    remaining -= len(data)
                yield data

    def remove_now(self, digest: Digest) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.blob_path(digest))

    async def digests(self) -> AsyncIterator[tuple[Digest, int, float]]:
        # os.scandir, not pathlib: names of entries are not interned (see __init__)
        for algorithm in sorted(_subdirs(self._blobs_dir)):
            for prefix in sorted(_subdirs(os.path.join(self._blobs_dir, algorithm))):
                with os.scandir(os.path.join(self._blobs_dir, algorithm, prefix)) as it:
                    entries = sorted(it, key=lambda e: e.name)
                for entry in entries:
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except FileNotFoundError:
                        continue
                    yield Digest(algorithm, entry.name), st.st_size, st.st_mtime
                await asyncio.sleep(0)

    # -- uploads ---------------------------------------------------------------------------
    def _upload_path(self, upload_id: str) -> str:
        if not _UPLOAD_ID.match(upload_id):
            raise ValueError(f"bad upload id {upload_id!r}")
        return f"{self._uploads_dir}/{upload_id}"

    async def upload_write(self, upload_id: str, offset: int,
                           batches: AsyncIterable[Sequence[bytes]]) -> int:
        path = self._upload_path(upload_id)
        try:
            fd = os.open(path, os.O_WRONLY)
        except FileNotFoundError:
            # A session with an owner file gets its bytes file from its first write; one past
            # offset 0 must still have it (never re-create it as zeros), and one that is gone
            # stays gone.
            if offset != 0 or not os.path.exists(self._owner_path(upload_id)):  # noqa: ASYNC240
                raise
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE)
        try:
            _lock_upload(fd)
            os.ftruncate(fd, offset)
            if self._direct:
                return await self._write_direct(path, fd, offset, batches)
            return await self._write_buffered(path, fd, offset, batches)
        finally:
            os.close(fd)

    def upload_writer(self, upload_id: str, offset: int) -> FileUploadWriter:
        """A writer for a body received on threads (``BlockingUploadWriter``). A session with
        an owner file gets its bytes file here when nothing was written yet (as in
        ``upload_write``)."""
        path = self._upload_path(upload_id)
        if offset == 0 and not os.path.exists(path) and os.path.exists(
                self._owner_path(upload_id)):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE))
        return FileUploadWriter(path, offset, self._direct)

    async def _write_direct(self, path: str, fd: int, offset: int,
                            batches: AsyncIterable[Sequence[bytes]]) -> int:
        """The first ``DIRECT_FROM`` bytes are held; a body that ends before is written
        through the page cache (one writev), the rest goes to a ``DirectWriter``."""
        held: list[bytes] = []
        held_bytes = 0
        writer: direct.DirectWriter | None = None
        try:
            async for batch in batches:
                if writer is not None:
                    await writer.write(batch)
                    continue
                held.extend(batch)
                held_bytes += sum(len(p) for p in batch)
                if held_bytes >= direct.DIRECT_FROM:
                    writer = direct.DirectWriter.open(path, fd, offset)
                    await writer.write(held)
                    held = []
            if writer is not None:
                return await writer.finish()
            os.lseek(fd, offset, os.SEEK_SET)
            return offset + _writev_all(fd, held)
        except BaseException:
            if writer is not None:
                await writer.close()  # no write may land after the truncation
                writer = None
            # Whatever arrived of an interrupted chunk is dropped: the session stays at
            # the offset it had before this request.
            os.ftruncate(fd, offset)
            raise
        finally:
            if writer is not None:
                await writer.close()

    async def _write_buffered(self, path: str, fd: int, offset: int,
                              batches: AsyncIterable[Sequence[bytes]]) -> int:
        loop = asyncio.get_running_loop()
        syncing: asyncio.Future[None] | None = None
        os.lseek(fd, offset, os.SEEK_SET)
        size = offset
        unsynced = 0
        synced_to = offset
        try:
            async for batch in batches:
                n = _writev_all(fd, batch)
                size += n
                unsynced += n
                # Write back what has arrived while the rest streams in, so the fsync
                # before the blob is placed finds little left to do.
                if unsynced >= _SYNC_EVERY and (syncing is None or syncing.done()):
                    syncing = loop.run_in_executor(None, _writeback_copy, _reopen(path),
                                                   synced_to, size - synced_to)
                    synced_to, unsynced = size, 0
        except BaseException:
            # Whatever arrived of an interrupted chunk is dropped: the session stays at
            # the offset it had before this request.
            os.ftruncate(fd, offset)
            raise
        if size > synced_to and size - offset >= _SYNC_TAIL_FROM:
            # The chunk's tail too: otherwise each chunk of a chunked upload leaves up to
            # _SYNC_EVERY bytes (more while the disk lags) for the final fsync to write.
            # (A small body is left to that fsync: a thread job would cost more.)
            loop.run_in_executor(None, _writeback_copy, _reopen(path), synced_to,
                                 size - synced_to)
        return size

    async def upload_read(self, upload_id: str, end: int,
                          start: int = 0) -> AsyncIterator[bytes]:
        with open(self._upload_path(upload_id), "rb") as f:  # noqa: ASYNC230 (as above)
            f.seek(start)
            remaining = end - start
            while remaining > 0:
                data = f.read(min(_READ_CHUNK, remaining))
                if not data:
                    break
                remaining -= len(data)
                yield data

    async def upload_sync(self, upload_id: str, digest: Digest, size: int) -> None:
        await asyncio.to_thread(self.upload_sync_blocking, upload_id, digest, size)

    def upload_sync_blocking(self, upload_id: str, digest: Digest, size: int) -> None:
        fd = os.open(self._upload_path(upload_id), os.O_RDONLY)
        try:
            # the bytes and what reading them back needs (the size); the name is made
            # durable by the rename's directory fsync (persist_placed)
            os.fdatasync(fd)
            if self._direct and size >= direct.DIRECT_FROM:
                # Bytes written with O_DIRECT are not in the page cache: the first pull of a
                # blob just pushed would read it from the disk (a buffered write left it
                # cached). Start reading it back now, off the push's clock.
                self._io_threads().submit(_read_ahead, os.dup(fd))
        finally:
            os.close(fd)

    def upload_place(self, upload_id: str, digest: Digest, size: int | None = None) -> bool:
        source = self._upload_path(upload_id)
        target = self.blob_path(digest)
        placed = not os.path.exists(target)
        if placed:
            private_dirs(os.path.dirname(target))  # a string: no interned Path parts
            with self._held(source, size):
                os.replace(source, target)
            if self.owner_xattr:  # the blob keeps no trace of its upload
                with contextlib.suppress(OSError):
                    os.removexattr(target, _OWNER_ATTR)
        # else: a file at a content address is always whole (it got there by this rename of
        # a synced upload), so the bytes are already in place; the upload's own copy is
        # deleted by upload_abort after the transaction (freeing a big file's blocks is
        # slow, and this runs under the write lock).
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._owner_path(upload_id))  # a session with an owner file
        return placed

    @contextlib.contextmanager
    def _held(self, path: str, size: int | None) -> Iterator[None]:
        """The upload's writer lock held, and its size checked, around its placement: no
        request is writing to it and it holds exactly the bytes that were hashed."""
        if size is None:
            yield
            return
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            if size == 0:  # an owner file's session that never wrote: the empty blob
                yield
                return
            raise
        try:
            _lock_upload(fd)
            if os.fstat(fd).st_size != size:
                raise UploadBusy(f"the upload holds {os.fstat(fd).st_size} bytes, not {size}")
            yield
        finally:
            os.close(fd)

    def persist_placed(self, digests: list[str]) -> None:
        """fsync the directory of every blob placed; several at once, on threads: this runs
        under the write lock, and blobs mostly land in directories of their own (256 of
        them), each fsync a write and a cache flush of its own."""
        directories = list({os.path.dirname(self.blob_path(Digest.parse(d))) for d in digests})
        if len(directories) == 1:
            fsync_dir(directories[0])
            return
        for _ in self._io_threads().map(fsync_dir, directories):
            pass  # every fsync done (the first error raised)

    async def upload_abort(self, upload_id: str) -> None:
        paths = (self._upload_path(upload_id), self._owner_path(upload_id))

        def remove() -> None:
            for path in paths:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)

        await asyncio.to_thread(remove)

    # Starting a session writes no metadata transaction (the session gets a row once a chunk
    # is recorded): its owner is kept with its bytes file, in an extended attribute, or in a
    # small owner file beside it where the filesystem has no user extended attributes.
    def _owner_path(self, upload_id: str) -> str:
        return self._upload_path(upload_id) + ".owner"

    async def upload_start(self, upload_id: str, repository: str) -> None:
        owner = repository.encode()
        if self.owner_xattr:
            path = self._upload_path(upload_id)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
            try:
                os.setxattr(fd, _OWNER_ATTR, owner)
                return
            except OSError as exc:
                if exc.errno in _NO_XATTRS:
                    self.owner_xattr = False  # this filesystem has none: owner files
                elif exc.errno not in (errno.E2BIG, errno.ERANGE):  # too long: a file
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(path)
                    raise
            finally:
                os.close(fd)
            # an owner file beside the (empty) bytes file
        fd = os.open(self._owner_path(upload_id), os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                     FILE_MODE)
        try:
            os.write(fd, owner)
        finally:
            os.close(fd)

    async def upload_size(self, upload_id: str) -> int | None:
        try:
            return os.stat(self._upload_path(upload_id)).st_size
        except ValueError:
            return None
        except FileNotFoundError:  # an owner file's session with nothing written yet, or gone
            return 0 if os.path.exists(self._owner_path(upload_id)) else None  # noqa: ASYNC240

    async def upload_owner(self, upload_id: str) -> tuple[str, float] | None:
        """The repository and, for a session with its owner in an extended attribute, the
        time of its last write (its start if nothing was written): idle expiry counts from
        it. For a session with an owner file, the time it started."""
        try:
            fd = os.open(self._upload_path(upload_id), os.O_RDONLY)
        except ValueError:
            return None
        except FileNotFoundError:
            return self._owner_file(upload_id)
        try:
            owner = os.getxattr(fd, _OWNER_ATTR)
            return owner.decode(), os.fstat(fd).st_mtime
        except OSError as exc:
            if exc.errno not in _NO_OWNER_ATTR:
                raise
            return self._owner_file(upload_id)
        finally:
            os.close(fd)

    def _owner_file(self, upload_id: str) -> tuple[str, float] | None:
        try:
            fd = os.open(self._owner_path(upload_id), os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            return os.read(fd, 4096).decode(), os.fstat(fd).st_mtime
        finally:
            os.close(fd)

    async def close(self) -> None:
        """Nothing to release: files are opened per call."""

    async def uploads_started_before(self, cutoff: float) -> list[str]:
        """Sessions whose owner file is older than ``cutoff``, and bytes files without one
        (sessions with their owner in an extended attribute) last written before it."""
        with os.scandir(self._uploads_dir) as it:
            entries = {e.name: e for e in it if not e.name.startswith(".")}
        stale = []
        for name, entry in entries.items():
            upload_id, _, suffix = name.partition(".")
            if suffix not in ("", "owner") or (not suffix and f"{name}.owner" in entries):
                continue  # not a session's, or a bytes file with an owner file
            with contextlib.suppress(FileNotFoundError):
                if entry.stat().st_mtime < cutoff:
                    stale.append(upload_id)
        return stale
