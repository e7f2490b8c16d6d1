""".containerignore / .dockerignore matching (BuildKit dockerignore + patternmatcher)."""

from __future__ import annotations

from pathlib import Path

import pytest

from strata.build.containerfile import ContainerfileError
from strata.build.ignore import parse_ignore_file
from strata.image.layer import scan_tree


@pytest.mark.parametrize(
    ("patterns", "path", "ignored"),
    [
        # Docker documentation examples
        ("*/temp*", "somedir/temporary.txt", True),
        ("*/temp*", "somedir/temp", True),
        ("*/temp*", "temp", False),
        ("*/temp*", "a/b/temp", False),
        ("*/*/temp*", "somedir/subdir/temporary.txt", True),
        ("temp?", "tempa", True),
        ("temp?", "temp", False),
        ("temp?", "tempab", False),
        # ** matches any number of directories, including none
        ("**/*.go", "main.go", True),
        ("**/*.go", "a/b/c.go", True),
        ("**/*.go", "a/b/c.golang", False),
        ("a/**/z", "a/z", True),
        ("a/**/z", "a/b/c/z", True),
        ("a/**", "a/x/y", True),
        ("**", "anything/at/all", True),
        # a pattern matching a directory matches everything below it
        ("node_modules", "node_modules/pkg/index.js", True),
        ("build/", "build/out/a.o", True),
        ("/build", "build/out/a.o", True),
        ("./build", "build", True),
        ("src/../build", "build/x", True),
        ("node_modules", "src/node_modules/x", False),
        # * and ? never cross a separator
        ("*.md", "docs/a.md", False),
        ("*", "a/b", True),  # matches via the parent "a"
        ("a?b", "a/b", False),
        # character classes and escapes
        ("file[0-9].txt", "file7.txt", True),
        ("file[0-9].txt", "filex.txt", False),
        ("[^a]bc", "xbc", True),
        ("[^a]bc", "abc", False),
        ("[]a]x", "]x", True),
        ("[a\\-z]", "-", True),
        ("[a\\-z]", "b", False),
        ("[a-c]?", "b1", True),
        ("x[^a]y", "x/y", False),
        ("x[^a]y", "xby", True),
        ("\\*star", "*star", True),
        ("\\*star", "xstar", False),
        ("a.b", "axb", False),  # '.' is literal
        ("a+(b)", "a+(b)", True),
        # comments and blank lines
        ("# comment\n\n", "# comment", False),
    ],
)
def test_single_pattern(patterns: str, path: str, ignored: bool) -> None:
    assert parse_ignore_file(patterns).is_ignored(path) is ignored


def test_exceptions_last_match_wins() -> None:
    matcher = parse_ignore_file("*.md\n!README*.md\nREADME-secret.md\n")
    assert matcher.is_ignored("CHANGES.md")
    assert not matcher.is_ignored("README.md")
    assert matcher.is_ignored("README-secret.md")
    reordered = parse_ignore_file("*.md\nREADME-secret.md\n!README*.md\n")
    assert not reordered.is_ignored("README-secret.md")


def test_exception_inside_ignored_directory() -> None:
    matcher = parse_ignore_file("vendor\n!vendor/keep\n")
    assert matcher.is_ignored("vendor")
    assert matcher.is_ignored("vendor/other/x")
    assert not matcher.is_ignored("vendor/keep")
    assert not matcher.can_prune("vendor")
    assert not parse_ignore_file("vendor\n").can_prune("src")
    assert parse_ignore_file("vendor\n").can_prune("vendor")
    assert parse_ignore_file("**\n!src/**\n").can_prune("docs")
    assert not parse_ignore_file("**\n!**/*.go\n").can_prune("docs")


def test_whitespace_and_leading_hash_rules() -> None:
    matcher = parse_ignore_file("  spaced  \n  # not a comment\n\t\n")
    assert matcher.is_ignored("spaced")
    assert matcher.is_ignored("# not a comment")


@pytest.mark.parametrize(("text", "line"), [("ok\n[abc\n", 2), ("a\n\n!\n", 3)])
def test_bad_patterns_report_line(text: str, line: int) -> None:
    with pytest.raises(ContainerfileError) as info:
        parse_ignore_file(text)
    assert info.value.line == line and f"line {line}" in str(info.value)


def test_scan_tree_honours_ignore_matcher(tmp_path: Path) -> None:
    for rel in ["src/app.py", "src/app.pyc", "vendor/keep/k.txt", "vendor/drop/d.txt", "x.md"]:
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rel)
    matcher = parse_ignore_file("**/*.pyc\nvendor\n!vendor/keep\n*.md\n")
    names = [e.path for e in scan_tree(tmp_path, source_date_epoch=0, ignore=matcher)]
    assert names == ["src", "src/app.py", "vendor", "vendor/keep", "vendor/keep/k.txt"]
