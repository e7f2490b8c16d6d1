"""Scope parsing, name validation and the Bearer challenge header."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strata.auth.scope import (
    MAX_NAME_LENGTH,
    Scope,
    ScopeError,
    format_challenge,
    is_valid_repository_name,
    merge_scopes,
    parse_scopes,
)


def test_parse_repository_scope() -> None:
    scope = Scope.parse("repository:f25/cockpit:pull,push")
    assert scope == Scope("repository", "f25/cockpit", frozenset({"pull", "push"}))
    assert str(scope) == "repository:f25/cockpit:pull,push"


def test_parse_catalog_scope() -> None:
    assert Scope.parse("registry:catalog:*") == Scope("registry", "catalog", frozenset({"*"}))


def test_actions_are_canonically_ordered_and_deduplicated() -> None:
    scope = Scope.parse("repository:a/b:*,delete,push,pull,push")
    assert scope.sorted_actions() == ["pull", "push", "delete", "*"]
    assert str(scope) == "repository:a/b:pull,push,delete,*"


def test_last_colon_separates_actions() -> None:
    # Docker semantics: first colon ends the type, last colon starts the actions.
    scope = Scope.parse("repository:a:b")
    assert scope.name == "a"
    assert scope.actions == frozenset()  # "b" is a well-formed but unknown action: dropped


@pytest.mark.parametrize(
    "text",
    [
        "repository:a:b:pull",  # name "a:b"
        "repository:127.0.0.1:5000/x:pull",  # host:port prefixes are not names here
        "repository:localhost:5000/x:pull",
        "repository:a::pull",
        "repository::pull",
        "repository:a/b:c:pull,push",
    ],
)
def test_extra_colons_are_rejected(text: str) -> None:
    with pytest.raises(ScopeError):
        Scope.parse(text)


@pytest.mark.parametrize(
    "text",
    ["", "repository", "repository:foo", ":", "::", "repository:", ":a:pull"],
)
def test_structurally_malformed_scopes(text: str) -> None:
    with pytest.raises(ScopeError):
        Scope.parse(text)


@pytest.mark.parametrize(
    "name",
    [
        "..",
        "a/../b",
        "../a",
        "a/..",
        "a..b",
        ".a",
        "a.",
        "%2e%2e",
        "%2e%2e/a",
        "a%2fb",
        "a%20b",
        "Foo",
        "foo/Bar",
        "FOO",
        "-a",
        "a-",
        "_a",
        "a_",
        "a___b",
        "a._b",
        "a/",
        "/a",
        "a//b",
        "a b",
        "a\nb",
        "a\x00b",
        "a\\b",
        "\uff41",  # fullwidth latin a
        "caf\u00e9",
        "a" * (MAX_NAME_LENGTH + 1),
        "x/" + "a" * 300,  # over-long component
        "/".join(["ab"] * 100),  # too many components: 299 characters
    ],
)
def test_invalid_repository_names(name: str) -> None:
    assert not is_valid_repository_name(name)
    with pytest.raises(ScopeError):
        Scope.parse(f"repository:{name}:pull")
    with pytest.raises(ScopeError):
        Scope("repository", name, frozenset({"pull"}))


@pytest.mark.parametrize(
    "name",
    [
        "a",
        "0",
        "a/b",
        "f25/cockpit",
        "a.b",
        "a_b",
        "a__b",
        "a-b",
        "a---b",
        "a.b-c__d/e_f.g",
        "a" * MAX_NAME_LENGTH,
        "/".join(["a" * 63] * 4),  # 255 characters
    ],
)
def test_valid_repository_names(name: str) -> None:
    assert is_valid_repository_name(name)
    assert Scope.parse(f"repository:{name}:pull").name == name


@pytest.mark.parametrize(
    "text",
    [
        "repository(plugin):a:pull",
        "foo:bar:pull",
        "Repository:a:pull",
        "REGISTRY:catalog:*",
        "registry:other:*",
        "registry:Catalog:*",
    ],
)
def test_unsupported_types_and_resources(text: str) -> None:
    with pytest.raises(ScopeError):
        Scope.parse(text)


def test_unknown_actions_are_dropped() -> None:
    assert Scope.parse("repository:a:pull,metadata_read").actions == frozenset({"pull"})
    assert Scope.parse("repository:a:bogus").actions == frozenset()
    assert Scope.parse("registry:catalog:pull").actions == frozenset()


@pytest.mark.parametrize(
    "actions",
    ["pull,,push", "pull,", ",pull", "PULL", "pull push", "pull;rm", "pu*ll", "**", "-x", "é"],
)
def test_malformed_actions_are_rejected(actions: str) -> None:
    with pytest.raises(ScopeError):
        Scope.parse(f"repository:a:{actions}")


def test_empty_action_list_round_trips() -> None:
    scope = Scope.parse("repository:a:")
    assert scope.actions == frozenset()
    assert Scope.parse(str(scope)) == scope


def test_over_long_scope_string_is_rejected_before_parsing() -> None:
    with pytest.raises(ScopeError, match="too long"):
        Scope.parse("repository:a:" + "pull," * 200 + "pull")


def test_constructor_validates() -> None:
    with pytest.raises(ScopeError):
        Scope("repository", "a", frozenset({"bogus"}))
    with pytest.raises(ScopeError):
        Scope("registry", "catalog", frozenset({"pull"}))
    with pytest.raises(ScopeError):
        Scope("nope", "a", frozenset())
    coerced = Scope("repository", "a", {"pull"})  # type: ignore[arg-type]
    assert isinstance(coerced.actions, frozenset)


def test_parse_scopes_space_separated_and_repeated() -> None:
    scopes = parse_scopes(
        ["repository:a:pull repository:b:push", "repository:a:push", "", "registry:catalog:*"]
    )
    assert scopes == (
        Scope("repository", "a", frozenset({"pull", "push"})),
        Scope("repository", "b", frozenset({"push"})),
        Scope("registry", "catalog", frozenset({"*"})),
    )


def test_parse_scopes_ignores_repeated_spaces_and_empty_values() -> None:
    assert parse_scopes(["  repository:a:pull   "]) == (
        Scope("repository", "a", frozenset({"pull"})),
    )
    assert parse_scopes([]) == ()
    assert parse_scopes([""]) == ()


def test_parse_scopes_rejects_any_bad_scope() -> None:
    with pytest.raises(ScopeError):
        parse_scopes(["repository:a:pull repository:../x:pull"])
    with pytest.raises(ScopeError):
        parse_scopes(["repository:a:pull\trepository:b:pull"])


def test_parse_scopes_limit() -> None:
    values = [f"repository:r{i}:pull" for i in range(5)]
    assert len(parse_scopes(values, max_scopes=5)) == 5
    with pytest.raises(ScopeError, match="too many"):
        parse_scopes(values, max_scopes=4)


def test_access_entry_round_trip_and_strictness() -> None:
    scope = Scope("repository", "a/b", frozenset({"push", "pull"}))
    assert scope.to_access() == {"type": "repository", "name": "a/b", "actions": ["pull", "push"]}
    assert Scope.from_access(scope.to_access()) == scope
    bad_entries: list[object] = [
        None,
        [],
        {"type": "repository", "name": "a"},
        {"type": "repository", "name": "a", "actions": "pull"},
        {"type": "repository", "name": "a", "actions": [1]},
        {"type": "repository", "name": 1, "actions": []},
        {"type": "repository", "name": "a", "actions": ["bogus"]},
        {"type": "repository", "name": "A", "actions": ["pull"]},
        {"type": "repository", "name": "a", "actions": [], "class": "image"},
    ]
    for bad in bad_entries:
        with pytest.raises(ScopeError):
            Scope.from_access(bad)


def test_format_challenge_matches_the_spec_example() -> None:
    scope = Scope.parse("repository:samalba/my-app:pull,push")
    assert format_challenge("https://auth.docker.io/token", "registry.docker.io", [scope]) == (
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:samalba/my-app:pull,push"'
    )


def test_format_challenge_with_error_and_several_scopes() -> None:
    scopes = [
        Scope.parse("repository:a:push"),
        Scope.parse("repository:b:pull"),
        Scope.parse("repository:a:pull"),
        Scope.parse("repository:c:"),  # nothing to ask for: omitted
    ]
    value = format_challenge("https://r/token", "r", scopes, error="insufficient_scope")
    assert value == (
        'Bearer realm="https://r/token",service="r",'
        'scope="repository:a:pull,push repository:b:pull",error="insufficient_scope"'
    )


def test_format_challenge_without_scope() -> None:
    assert format_challenge("https://r/token", "r") == 'Bearer realm="https://r/token",service="r"'
    assert format_challenge("https://r/token", "r", error="invalid_token").endswith(
        ',error="invalid_token"'
    )


def test_format_challenge_escapes_and_refuses_injection() -> None:
    assert format_challenge('a"b\\c', "s") == 'Bearer realm="a\\"b\\\\c",service="s"'
    with pytest.raises(ValueError):
        format_challenge("https://r/token\r\nSet-Cookie: x=1", "r")
    with pytest.raises(ValueError):
        format_challenge("https://r/token", "r\u00e9")
    with pytest.raises(ValueError):
        format_challenge("https://r/token", "r", error='x",realm="evil')


# ---------------------------------------------------------------------------
# Property tests

_ALNUM = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=6)
_SEPARATOR = st.sampled_from([".", "_", "__", "-", "--", "---"])


@st.composite
def _components(draw: st.DrawFn) -> str:
    parts = draw(st.lists(_ALNUM, min_size=1, max_size=4))
    out = parts[0]
    for part in parts[1:]:
        out += draw(_SEPARATOR) + part
    return out


_NAMES = (
    st.lists(_components(), min_size=1, max_size=5)
    .map("/".join)
    .filter(lambda n: len(n) <= MAX_NAME_LENGTH)
)
_REPOSITORY_SCOPES = st.builds(
    Scope,
    st.just("repository"),
    _NAMES,
    st.frozensets(st.sampled_from(["pull", "push", "delete", "*"])),
)
_SCOPES = st.one_of(
    _REPOSITORY_SCOPES,
    st.builds(Scope, st.just("registry"), st.just("catalog"), st.just(frozenset({"*"}))),
)


@settings(database=None)
@given(_SCOPES)
def test_scope_string_round_trip(scope: Scope) -> None:
    assert Scope.parse(str(scope)) == scope
    assert Scope.from_access(scope.to_access()) == scope


@settings(database=None)
@given(st.lists(_SCOPES, max_size=8))
def test_scope_list_round_trip(scopes: list[Scope]) -> None:
    joined = " ".join(str(s) for s in scopes)
    assert parse_scopes([joined]) == merge_scopes(scopes)
    assert parse_scopes([str(s) for s in scopes]) == merge_scopes(scopes)


@settings(database=None)
@given(st.text(max_size=80))
def test_parser_only_raises_scope_error_and_yields_valid_scopes(text: str) -> None:
    try:
        scope = Scope.parse(text)
    except ScopeError:
        return
    assert scope.type in {"repository", "registry"}
    assert ":" not in scope.name
    assert scope.type == "registry" or is_valid_repository_name(scope.name)


@settings(database=None)
@given(_NAMES, st.sampled_from(["..", "%2e", "A", ":", "//", " ", "é", "-"]))
def test_poisoned_names_are_rejected(name: str, poison: str) -> None:
    for candidate in (poison + name, name + poison, f"{name}/{poison}"):
        assert not is_valid_repository_name(candidate)
