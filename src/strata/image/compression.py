"""Deterministic layer compression and transparent decompression.

Spec notes:

* OCI image-spec ``media-types.md`` / ``layer.md``: ``application/vnd.oci.image.layer.v1.tar``
  with the ``+gzip`` (RFC 1952) and ``+zstd`` (RFC 8878) suffixes.
* RFC 1952 section 2.3: the gzip member header is written by hand -- ``FLG`` 0 (no
  FNAME, FCOMMENT, FEXTRA or FHCRC), ``MTIME`` 0, ``XFL`` 0 and ``OS`` 255 ("unknown"),
  the same ten bytes Go's ``compress/gzip`` writes -- followed by a raw DEFLATE stream
  from ISA-L (``isal.isal_zlib``, ``wbits=-15``) and the CRC-32/ISIZE trailer.
* RFC 8878 section 3.1.1.1: the zstd frame header never carries a content size or a
  dictionary id; the 32-bit content checksum is always present (it is a function of the
  content, so it does not vary).  Compression is single-threaded because zstd's
  multi-threaded mode produces a different (still deterministic) frame layout.

ISA-L's stateful deflate output depends on how the input is split across ``compress``
calls, so callers must feed fixed-size blocks (see :class:`strata.image.layer` 's
block writer); with that, identical input gives identical bytes for a given
isal/ISA-L version and CPU architecture.  The ``diff_id`` (sha256 of the uncompressed
tar) is the portable identity; the compressed digest is reproducible on the same
toolchain.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Literal, Protocol, cast

import zstandard
from isal import igzip, isal_zlib

from strata.image.errors import LayerError

__all__ = [
    "DECOMPRESSION_ERRORS",
    "MEDIA_TYPES",
    "Compression",
    "Compressor",
    "detect_compression",
    "make_compressor",
    "open_decompressed",
]

Compression = Literal["gzip", "zstd", "none"]

MEDIA_TYPES: dict[str, str] = {
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
    "none": "application/vnd.oci.image.layer.v1.tar",
}

#: Exceptions (besides ``OSError``/``EOFError``) a corrupt compressed stream can raise.
DECOMPRESSION_ERRORS: tuple[type[Exception], ...] = (
    zstandard.ZstdError,
    cast("type[Exception]", isal_zlib.IsalError),  # the isal stub declares an instance
)

GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class Compressor(Protocol):
    """Incremental compressor: ``compress`` each block, then ``flush`` once."""

    def compress(self, data: memoryview) -> bytes: ...

    def flush(self) -> bytes: ...


class _Identity:
    def compress(self, data: memoryview) -> bytes:
        return data.tobytes()

    def flush(self) -> bytes:
        return b""


class _Gzip:
    def __init__(self, level: int) -> None:
        self._deflate = isal_zlib.compressobj(level, isal_zlib.DEFLATED, -15)
        self._crc = 0
        self._length = 0
        self._header = GZIP_HEADER

    def _take_header(self) -> bytes:
        header, self._header = self._header, b""
        return header

    def compress(self, data: memoryview) -> bytes:
        self._crc = isal_zlib.crc32(data, self._crc)
        self._length += len(data)
        return self._take_header() + self._deflate.compress(data)

    def flush(self) -> bytes:
        trailer = struct.pack("<II", self._crc & 0xFFFFFFFF, self._length & 0xFFFFFFFF)
        return self._take_header() + self._deflate.flush() + trailer


class _Zstd:
    def __init__(self, level: int) -> None:
        self._cobj = zstandard.ZstdCompressor(
            level=level,
            write_checksum=True,
            write_content_size=False,
            write_dict_id=False,
            threads=0,
        ).compressobj()

    def compress(self, data: memoryview) -> bytes:
        return self._cobj.compress(data)

    def flush(self) -> bytes:
        return self._cobj.flush()


def make_compressor(compression: Compression, level: int) -> Compressor:
    """Compressor for *compression*; *level* is 0-3 for ISA-L gzip, 1-22 for zstd."""
    if compression == "gzip":
        if not isal_zlib.ISAL_BEST_SPEED <= level <= isal_zlib.ISAL_BEST_COMPRESSION:
            raise LayerError(f"gzip (ISA-L) level must be 0..3, got {level}")
        return _Gzip(level)
    if compression == "zstd":
        if not 1 <= level <= zstandard.MAX_COMPRESSION_LEVEL:
            raise LayerError(f"zstd level must be 1..{zstandard.MAX_COMPRESSION_LEVEL}")
        return _Zstd(level)
    if compression == "none":
        return _Identity()
    raise LayerError(f"unknown compression {compression!r}")


def detect_compression(path: Path) -> Compression:
    """Sniff a blob's magic bytes: gzip, zstd, or (anything else) plain tar."""
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic[:2] == GZIP_HEADER[:2]:
        return "gzip"
    if magic == _ZSTD_MAGIC:
        return "zstd"
    return "none"


@contextmanager
def open_decompressed(path: Path) -> Iterator[BinaryIO]:
    """Open a layer blob for streaming reads of its uncompressed tar."""
    kind = detect_compression(path)
    if kind == "gzip":
        with igzip.open(path, "rb") as gz:  # type: ignore[no-untyped-call]
            yield cast(BinaryIO, gz)
    elif kind == "zstd":
        with open(path, "rb") as raw:
            reader = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
            with reader:
                yield cast(BinaryIO, reader)
    else:
        with open(path, "rb") as raw:
            yield raw
