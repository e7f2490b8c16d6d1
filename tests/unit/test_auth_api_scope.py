"""``strata:api:read|write``: parsing and the grant table (requested ∩ allowed)."""

from __future__ import annotations

import pytest

from strata.auth.policy import Principal, Role, grant
from strata.auth.scope import Scope, ScopeError, parse_scopes

ALL = Scope.parse("strata:api:*")


@pytest.mark.parametrize(("roles", "actions"), [
    ({Role.ADMIN}, {"read", "write"}), ({Role.RELENG}, {"read", "write"}),
    ({Role.MAINTAINER}, {"read", "write"}),
    ({Role.REVIEWER}, {"read", "write"}),  # reviewers write reviews (issue 14)
    ({Role.ROBOT}, set()), (set(), set()),
])
def test_the_api_grant_follows_the_roles(roles: set[Role], actions: set[str]) -> None:
    images = {"f25/a"} if Role.MAINTAINER in roles else set()
    principal = Principal("someone", frozenset(roles), frozenset(images))
    granted = grant(principal, [ALL])
    assert {a for s in granted for a in s.actions} == actions
    assert grant(Principal.anonymous(), [ALL]) == ()


def test_only_what_was_asked_is_granted() -> None:
    admin = Principal("admin", frozenset({Role.ADMIN}))
    assert grant(admin, parse_scopes(["strata:api:read"])) == (Scope.parse("strata:api:read"),)
    assert grant(admin, parse_scopes(["repository:f25/a:pull"])) == (
        Scope.parse("repository:f25/a:pull"),)


@pytest.mark.parametrize("text", ["strata:catalog:read", "strata:api:read,,write", "strata:x:*"])
def test_malformed_api_scopes(text: str) -> None:
    with pytest.raises(ScopeError):
        Scope.parse(text)


def test_round_trip_and_unknown_actions() -> None:
    scope = Scope.parse("strata:api:write,read,bogus")
    assert str(scope) == "strata:api:read,write"
    assert Scope.from_access(scope.to_access()) == scope
