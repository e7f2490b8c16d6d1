"""``--source-allow``: which git URLs the server may clone (``config.source_refusal``)."""

from __future__ import annotations

import pytest

from strata.config import DEFAULT_SOURCE_ALLOW, source_refusal


@pytest.mark.parametrize("url", ["https://git.example.com/a.git", "https://h/x/y"])
def test_https_is_allowed_by_default(url: str) -> None:
    assert DEFAULT_SOURCE_ALLOW == ("https://",)
    assert source_refusal(url, DEFAULT_SOURCE_ALLOW) is None


@pytest.mark.parametrize("url", ["file:///srv/git/a", "ssh://git@h/a.git", "git@h:a.git",
                                 "/var/lib/strata", "http://h/a.git", "git://h/a.git",
                                 "ext::sh -c id", "-uhttps://x", "https://h/a b",
                                 "https://h/a\n", "https://h/../x", ""])
def test_everything_else_is_refused_by_default(url: str) -> None:
    assert source_refusal(url, DEFAULT_SOURCE_ALLOW) is not None


def test_a_prefix_allows_only_what_is_under_it() -> None:
    allow = ("file:///srv/git/", "https://git.example.com/")
    assert source_refusal("file:///srv/git/a.git", allow) is None
    assert source_refusal("https://git.example.com/a.git", allow) is None
    refused = source_refusal("file:///srv/git/../../etc/shadow", allow)
    assert refused is not None and ".." in refused
    refused = source_refusal("file:///srv/gitx/a", allow)
    assert refused is not None and "--source-allow" in refused
    assert source_refusal("https://git.example.com.evil/a", allow) is not None
