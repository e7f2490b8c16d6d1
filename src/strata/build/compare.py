"""What differs between two builds of one source (``strata build --verify``).

Two builds that should be identical but are not are compared layer by layer: for each
pair of layers whose ``diff_id`` differs, both tars are read (never unpacked) and every
path is compared on what a layer records -- type, content (sha256), mode, owner, mtime,
xattrs, link target, device numbers.  The image configs are compared key by key.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from strata.build.remote import BlobRef
from strata.image.compression import open_decompressed

__all__ = ["MAX_PATHS", "config_differences", "image_differences", "layer_differences"]

MAX_PATHS = 50  # per layer; the rest is counted

_TYPES = {tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.DIRTYPE: "dir",
          tarfile.SYMTYPE: "symlink", tarfile.LNKTYPE: "hardlink", tarfile.CHRTYPE: "char",
          tarfile.BLKTYPE: "block", tarfile.FIFOTYPE: "fifo"}


@dataclass(frozen=True)
class _Member:
    type: str
    content: str
    mode: int
    owner: str
    mtime: int
    xattrs: tuple[tuple[str, str], ...]
    link: str
    device: str


def _members(path: Path) -> Iterator[tuple[str, _Member]]:
    with open_decompressed(path) as raw, tarfile.open(fileobj=raw, mode="r|") as tf:
        for info in tf:
            content = ""
            if info.isreg():
                digest = hashlib.sha256()
                fh = tf.extractfile(info)
                if fh is not None:
                    while chunk := fh.read(1 << 20):
                        digest.update(chunk)
                content = f"sha256:{digest.hexdigest()}"
            xattrs = tuple(sorted((key.removeprefix("SCHILY.xattr."), value)
                                  for key, value in info.pax_headers.items()
                                  if key.startswith("SCHILY.xattr.")))
            device = f"{info.devmajor},{info.devminor}" if info.ischr() or info.isblk() else ""
            yield info.name.rstrip("/"), _Member(
                _TYPES.get(info.type, repr(info.type)), content, info.mode,
                f"{info.uid}:{info.gid}", int(info.mtime), xattrs, info.linkname, device)


def _what(a: _Member, b: _Member) -> list[str]:
    if a.type != b.type:
        return [f"type {a.type} != {b.type}"]
    what = []
    if a.content != b.content:
        what.append(f"content {a.content[:19]} != {b.content[:19]}")
    if a.mode != b.mode:
        what.append(f"mode {a.mode:04o} != {b.mode:04o}")
    if a.owner != b.owner:
        what.append(f"owner {a.owner} != {b.owner}")
    if a.mtime != b.mtime:
        what.append(f"mtime {a.mtime} != {b.mtime}")
    if a.xattrs != b.xattrs:
        what.append(f"xattrs {dict(a.xattrs)} != {dict(b.xattrs)}")
    if a.link != b.link:
        what.append(f"link {a.link!r} != {b.link!r}")
    if a.device != b.device:
        what.append(f"device {a.device} != {b.device}")
    return what


def layer_differences(first: Path, second: Path) -> list[str]:
    """One line per differing path of two layer blobs: ``/path: what differs``."""
    a = dict(_members(first))
    b = dict(_members(second))
    lines: list[str] = []
    for name in sorted(a.keys() | b.keys()):
        if name not in b:
            lines.append(f"/{name}: only in the first build")
        elif name not in a:
            lines.append(f"/{name}: only in the second build")
        elif what := _what(a[name], b[name]):
            lines.append(f"/{name}: {', '.join(what)}")
    if not lines and list(a) != list(b):
        lines.append("the same paths in a different order")
    return lines


def config_differences(first: bytes, second: bytes) -> list[str]:
    """Top-level (and ``config.*``) keys whose values differ between two image configs."""
    a: dict[str, Any] = json.loads(first)
    b: dict[str, Any] = json.loads(second)
    lines = []
    for key in sorted(a.keys() | b.keys()):
        if key == "config":
            inner_a, inner_b = a.get(key) or {}, b.get(key) or {}
            lines += [f"config.{k}: {json.dumps(inner_a.get(k))} != {json.dumps(inner_b.get(k))}"
                      for k in sorted(inner_a.keys() | inner_b.keys())
                      if inner_a.get(k) != inner_b.get(k)]
        elif key == "rootfs":
            continue  # the diff_ids: the layers above say more
        elif a.get(key) != b.get(key):
            lines.append(f"{key} differs")
    return lines


def image_differences(first: tuple[BlobRef, ...], second: tuple[BlobRef, ...],
                      configs: tuple[bytes, bytes]) -> list[str]:
    """What differs between two builds, layer by layer, path by path."""
    lines: list[str] = []
    for index, (x, y) in enumerate(zip(first, second, strict=False)):
        if x.diff_id != y.diff_id:
            lines.append(f"  layer {index}: diff_id {x.diff_id} != {y.diff_id}")
            paths = layer_differences(x.path, y.path)
            lines += [f"    {line}" for line in paths[:MAX_PATHS]]
            if len(paths) > MAX_PATHS:
                lines.append(f"    ... and {len(paths) - MAX_PATHS} more paths")
        elif x.digest != y.digest:
            lines.append(f"  layer {index}: same tar, different compression")
    if len(first) != len(second):
        lines.append(f"  {len(first)} layers != {len(second)} layers")
    config_lines = config_differences(*configs) if configs[0] != configs[1] else []
    if config_lines:  # (differing diff_ids alone are the layers above)
        lines.append("  the image configs differ:")
        lines += [f"    {line}" for line in config_lines]
    return lines
