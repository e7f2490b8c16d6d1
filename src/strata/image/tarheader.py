"""Canonical pax/ustar header encoding, owned here rather than borrowed from ``tarfile``.

A layer digest must not change when the Python runtime is upgraded, and CPython's
``tarfile`` writer has changed its byte output within a minor series (3.11.x stopped
writing ``devmajor``/``devminor`` digits for non-device members).  So headers are
encoded by this module, to a fixed layout:

* POSIX.1-1988 ``ustar`` block (IEEE Std 1003.1, "pax" utility, "ustar Interchange
  Format"): ``magic`` ``"ustar\\0"``, ``version`` ``"00"``; numeric fields are zero-padded
  octal terminated by NUL; the checksum is six octal digits, NUL, space (as GNU tar and
  CPython write it); ``uname``/``gname``/``prefix`` are empty; ``devmajor``/``devminor``
  hold digits for character and block devices only.
* A POSIX.1-2001 pax extended header (typeflag ``x``, name ``././@PaxHeader``, all
  numeric fields 0) precedes a member only when needed: ``path``/``linkpath`` for names
  that are not ASCII or longer than 100 bytes (the ustar field then holds an ASCII
  rendering, truncated), ``uid``/``gid``/``size`` beyond the octal field range, and
  ``SCHILY.xattr.<name>`` records.  Records are sorted by keyword, preceded by
  ``hdrcharset=BINARY`` when a value is not valid UTF-8 (names are raw bytes on Linux).
  ``atime``/``ctime``/``mtime`` records are never written: mtimes are whole seconds
  within the ustar range.

Directories are named with a trailing ``/``, like Go's ``archive/tar`` and CPython.
"""

from __future__ import annotations

from strata.image.entries import TarEntry

__all__ = ["BLOCK", "encode_header", "pax_records"]

BLOCK = 512

_TYPEFLAGS: dict[str, bytes] = {
    "file": b"0",
    "hardlink": b"1",
    "symlink": b"2",
    "char": b"3",
    "block": b"4",
    "dir": b"5",
    "fifo": b"6",
}
_MAGIC = b"ustar\x0000"
_PAX_NAME = b"././@PaxHeader"


def _octal(value: int, width: int) -> bytes:
    return b"%0*o\0" % (width - 1, value)


def _text(raw: bytes, width: int) -> bytes:
    return raw[:width].ljust(width, b"\0")


def _ustar(
    *,
    name: bytes,
    mode: int,
    uid: int,
    gid: int,
    size: int,
    mtime: int,
    typeflag: bytes,
    linkname: bytes = b"",
    device: tuple[int, int] | None = None,
) -> bytes:
    devices = _octal(device[0], 8) + _octal(device[1], 8) if device is not None else b"\0" * 16
    header = b"".join(
        [
            _text(name, 100),
            _octal(mode, 8),
            _octal(uid, 8),
            _octal(gid, 8),
            _octal(size, 12),
            _octal(mtime, 12),
            b" " * 8,  # checksum placeholder
            typeflag,
            _text(linkname, 100),
            _MAGIC,
            b"\0" * 64,  # uname, gname
            devices,
            b"\0" * 155,  # prefix
        ]
    ).ljust(BLOCK, b"\0")
    checksum = b"%06o\0 " % sum(header)
    return header[:148] + checksum + header[156:]


def _record(keyword: bytes, value: bytes) -> bytes:
    """One ``"<len> <keyword>=<value>\\n"`` record; ``len`` counts its own digits."""
    body = len(keyword) + len(value) + 3
    length = body + len(str(body))
    if len(str(length)) != len(str(body)):
        length += 1
    return b"%d %s=%s\n" % (length, keyword, value)


def pax_records(records: dict[str, bytes]) -> bytes:
    """Extended header member (header block + padded records) for *records*."""
    payload = b""
    if any(not _is_utf8(value) for value in records.values()):
        payload += _record(b"hdrcharset", b"BINARY")
    payload += b"".join(_record(key.encode("utf-8"), records[key]) for key in sorted(records))
    header = _ustar(name=_PAX_NAME, mode=0, uid=0, gid=0, size=len(payload), mtime=0, typeflag=b"x")
    return header + payload + b"\0" * (-len(payload) % BLOCK)


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _string_field(text: str, limit: int, keyword: str, records: dict[str, bytes]) -> bytes:
    raw = text.encode("utf-8", "surrogateescape")
    if raw.isascii() and len(raw) <= limit:
        return raw
    records[keyword] = raw
    return text.encode("ascii", "replace")[:limit]


def _number_field(value: int, width: int, keyword: str, records: dict[str, bytes]) -> int:
    if value < 8 ** (width - 1):
        return value
    records[keyword] = str(value).encode("ascii")
    return 0


def encode_header(entry: TarEntry) -> bytes:
    """The header block(s) for *entry*: an optional pax extended header, then ustar."""
    records: dict[str, bytes] = {f"SCHILY.xattr.{key}": value for key, value in entry.xattrs}
    name = entry.path + "/" if entry.kind == "dir" else entry.path
    block = _ustar(
        name=_string_field(name, 100, "path", records),
        mode=entry.mode,
        uid=_number_field(entry.uid, 8, "uid", records),
        gid=_number_field(entry.gid, 8, "gid", records),
        size=_number_field(entry.size, 12, "size", records),
        mtime=entry.mtime,
        typeflag=_TYPEFLAGS[entry.kind],
        linkname=_string_field(entry.linkname, 100, "linkpath", records),
        device=(entry.devmajor, entry.devminor) if entry.kind in ("char", "block") else None,
    )
    return pax_records(records) + block if records else block
