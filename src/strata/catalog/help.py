"""An image's help file and Markdown made safe for the pages.

Builds copy the source's ``help.md`` into the image as ``/help.md`` (the label policy asks for
it). :func:`find_help` reads it back from the image's layers, newest layer first: the first
layer that has ``help.md`` at its root (``./help.md`` too) wins; a whiteout
(``.wh.help.md``) in a newer layer hides older copies. Only layers up to
:data:`MAX_LAYER_BYTES` (compressed) are opened — a help file comes in a small ``COPY`` layer —
and at most :data:`MAX_HELP_BYTES` of it is kept. Decompression and tar reading run on a thread.

:func:`render_markdown` renders CommonMark with markdown-it-py and sanitizes the HTML with nh3
(ammonia): no script, style, event handler, ``javascript:`` URL or raw HTML survives, links get
``rel="noopener noreferrer nofollow"``. It is the one way user-written text (help files, release
notes) becomes HTML in the pages; everything else is escaped by the templates.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import re
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from strata.lazyimports import LazyModule

if TYPE_CHECKING:  # imported by the first help page rendered (issue #18, peak PSS)
    import tarfile

    import markdown_it
    import nh3
    import zstandard
else:
    markdown_it = LazyModule("markdown_it")
    nh3 = LazyModule("nh3")
    tarfile = LazyModule("tarfile")
    zstandard = LazyModule("zstandard")

MAX_LAYER_BYTES = 8 << 20
MAX_HELP_BYTES = 256 << 10
MAX_MARKDOWN_CHARS = 512 << 10
HELP_NAMES = ("help.md", "./help.md")
WHITEOUTS = (".wh.help.md", "./.wh.help.md")

_ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "details", "dl", "dt", "em",
    "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "kbd", "li", "ol", "p", "pre", "s",
    "strong", "sub", "summary", "sup", "table", "tbody", "td", "th", "thead", "tr", "ul",
}
_ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "title"},
                       "th": {"align"}, "td": {"align"}, "ol": {"start"}}


@dataclass(frozen=True, slots=True)
class LayerRef:
    """A layer as the manifest names it."""

    digest: str
    media_type: str
    size: int


Reader = Callable[[str], Awaitable[AsyncIterator[bytes]]]
"""Opens a blob of the image's repository by digest (the registry's blob read)."""


def _markdown() -> markdown_it.MarkdownIt:
    return markdown_it.MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")


_HEADING = re.compile(r"<(/?)h([1-6])>")


def render_markdown(text: str, *, heading_shift: int = 2) -> str:
    """Safe HTML for ``text`` (CommonMark + tables); raw HTML in the source is shown as text.
    Headings move ``heading_shift`` levels down (a help file's ``#`` sits under the page's
    ``<h2>``), at most to ``<h6>``."""
    html = _markdown().render(text[:MAX_MARKDOWN_CHARS])
    clean = nh3.clean(html, tags=_ALLOWED_TAGS, attributes=_ALLOWED_ATTRIBUTES,
                      url_schemes={"http", "https", "mailto"},
                      link_rel="noopener noreferrer nofollow")
    return _HEADING.sub(lambda m: f"<{m[1]}h{min(6, int(m[2]) + heading_shift)}>", clean)


def _decompressed(data: bytes, media_type: str) -> io.BufferedIOBase | io.BytesIO:
    if media_type.endswith("+zstd") or data[:4] == b"\x28\xb5\x2f\xfd":
        return io.BytesIO(zstandard.ZstdDecompressor().decompressobj().decompress(data))
    if media_type.endswith("+gzip") or data[:2] == b"\x1f\x8b":
        return io.BytesIO(gzip.decompress(data))
    return io.BytesIO(data)


def help_in_layer(data: bytes, media_type: str) -> tuple[bool, str | None]:
    """(decided, text): ``(True, text)`` when the layer holds ``help.md``, ``(True, None)``
    when it removes it (whiteout), ``(False, None)`` when it says nothing about it."""
    try:
        with tarfile.open(fileobj=_decompressed(data, media_type), mode="r:") as tar:
            for member in tar:
                if member.name in WHITEOUTS:
                    return True, None
                if member.name in HELP_NAMES and member.isfile():
                    handle = tar.extractfile(member)
                    if handle is None:
                        return True, None
                    raw = handle.read(MAX_HELP_BYTES)
                    return True, raw.decode("utf-8", errors="replace")
    except (tarfile.TarError, OSError, EOFError, zlib.error, zstandard.ZstdError):
        return False, None
    return False, None


async def find_help(layers: Sequence[LayerRef], read: Reader) -> str | None:
    """The text of ``/help.md`` in an image of ``layers`` (bottom first), or None."""
    for layer in reversed(layers):
        if layer.size > MAX_LAYER_BYTES:
            continue
        chunks = []
        async for chunk in await read(layer.digest):
            chunks.append(chunk)
        decided, text = await asyncio.to_thread(help_in_layer, b"".join(chunks),
                                                layer.media_type)
        if decided:
            return text
    return None
