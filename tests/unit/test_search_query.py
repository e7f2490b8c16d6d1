"""Search inputs parsed at the edge (``catalog/search.py``) and the help file ``strata build``
sends with a registration (``build/publish.help_of``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from strata.build.publish import help_of
from strata.catalog.search import ImageQuery, PackageQuery, words_of
from strata.errors import RegistryError


def test_words_are_letters_and_digits_lowercased() -> None:
    assert words_of('Cockpit-WS "OR" f25/nginx*') == ("cockpit", "ws", "or", "f25", "nginx")
    assert words_of("Łódź café") == ("łódź", "café")
    assert words_of(None) == ()
    assert words_of("a a A") == ("a",)


def test_queries_parse_with_bounds() -> None:
    q = ImageQuery.parse({"q": " Web  Console ", "namespace": "f25", "status": "active",
                          "eol": "no", "n": "10"})
    assert (q.text, q.words, q.namespace, q.status, q.eol, q.n, q.offset) == (
        "Web  Console", ("web", "console"), "f25", "active", False, 10, 0)
    p = PackageQuery.parse({"name": "openssl=3.0.8"})
    assert (p.name, p.version, p.after) == ("openssl", "3.0.8", None)
    with pytest.raises(RegistryError) as caught:
        ImageQuery.parse({"n": "-1"})
    assert caught.value.status == 400


def test_help_of_a_source(tmp_path: Path) -> None:
    assert help_of(tmp_path) == {}
    (tmp_path / "README.md").write_text("readme")
    assert help_of(tmp_path) == {"help": "readme"}
    (tmp_path / "help.md").write_text("h" * 70_000)
    assert help_of(tmp_path) == {"help": "h" * 65_536}  # help.md first, cut at 64 KiB
