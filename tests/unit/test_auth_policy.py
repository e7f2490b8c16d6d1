"""The role-by-action matrix and Docker's "grant the intersection" semantics."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from strata.auth.policy import (
    Principal,
    Role,
    allowed_actions,
    everything_public,
    grant,
    granted_actions,
    public_namespaces,
)
from strata.auth.scope import Scope

OWN = "f25/cockpit"
OTHER = "f25/other"

ANON = Principal.anonymous()
USER = Principal("user")
REVIEWER = Principal("rev", frozenset({Role.REVIEWER}))
MAINTAINER = Principal("maint", frozenset({Role.MAINTAINER}), frozenset({OWN}))
RELENG = Principal("releng", frozenset({Role.RELENG}))
ADMIN = Principal("admin", frozenset({Role.ADMIN}))
ROBOT = Principal("ci-bot", frozenset({Role.ROBOT}), frozenset({OWN}))
PUSH_ROBOT = Principal("ci-push", frozenset({Role.ROBOT, Role.MAINTAINER}), frozenset({OWN}))

ALL = frozenset({"pull", "push", "delete"})
PULL = frozenset({"pull"})
PULL_PUSH = frozenset({"pull", "push"})
NONE: frozenset[str] = frozenset()


def _public(value: bool) -> Callable[[str], bool]:
    return lambda _name: value


# (principal, repository, repository is public) -> granted actions for "*"
MATRIX = [
    (ANON, OWN, True, PULL),
    (ANON, OWN, False, NONE),
    (USER, OWN, True, PULL),
    (USER, OWN, False, NONE),
    (REVIEWER, OWN, True, PULL),
    (REVIEWER, OWN, False, PULL),
    (MAINTAINER, OWN, True, PULL_PUSH),
    (MAINTAINER, OWN, False, PULL_PUSH),
    (MAINTAINER, OTHER, True, PULL),
    (MAINTAINER, OTHER, False, NONE),
    (ROBOT, OWN, True, PULL),
    (ROBOT, OWN, False, NONE),
    (PUSH_ROBOT, OWN, False, PULL_PUSH),
    (PUSH_ROBOT, OTHER, True, PULL),
    (RELENG, OWN, True, ALL),
    (RELENG, OTHER, False, ALL),
    (ADMIN, OWN, True, ALL),
    (ADMIN, OTHER, False, ALL),
]


@pytest.mark.parametrize(("principal", "repo", "public", "expected"), MATRIX)
def test_role_action_matrix(
    principal: Principal, repo: str, public: bool, expected: frozenset[str]
) -> None:
    wildcard = Scope("repository", repo, frozenset({"*"}))
    assert granted_actions(principal, wildcard, public=_public(public)) == expected
    # Each action asked for separately gives the same answer.
    for action in ("pull", "push", "delete"):
        single = Scope("repository", repo, frozenset({action}))
        got = granted_actions(principal, single, public=_public(public))
        assert got == (frozenset({action}) & expected)


@pytest.mark.parametrize(
    "principal", [ANON, USER, REVIEWER, MAINTAINER, ROBOT, PUSH_ROBOT, RELENG, ADMIN]
)
def test_catalog_is_public(principal: Principal) -> None:
    catalog = Scope("registry", "catalog", frozenset({"*"}))
    assert granted_actions(principal, catalog, public=_public(False)) == frozenset({"*"})


def test_result_is_the_intersection_with_the_request() -> None:
    pull_only = Scope("repository", OWN, frozenset({"pull"}))
    assert granted_actions(ADMIN, pull_only) == PULL
    nothing = Scope("repository", OWN, frozenset())
    assert granted_actions(ADMIN, nothing) == NONE
    push_delete = Scope("repository", OWN, frozenset({"push", "delete"}))
    assert granted_actions(MAINTAINER, push_delete) == frozenset({"push"})
    assert granted_actions(USER, push_delete) == NONE


def test_wildcard_never_reaches_a_repository_token() -> None:
    for principal in (ADMIN, RELENG, MAINTAINER):
        got = granted_actions(principal, Scope("repository", OWN, frozenset({"*", "pull"})))
        assert "*" not in got


@pytest.mark.parametrize(
    "repo", ["f25/cockpit-ws", "f25/cockpit/sub", "f25", "f25/cockpi", "x/f25/cockpit"]
)
def test_maintainer_scope_is_the_exact_image(repo: str) -> None:
    push = Scope("repository", repo, frozenset({"push"}))
    assert granted_actions(MAINTAINER, push) == NONE
    assert granted_actions(PUSH_ROBOT, push) == NONE


def test_images_without_maintainer_role_grant_nothing() -> None:
    reviewer_with_images = Principal("r", frozenset({Role.REVIEWER}), frozenset({OWN}))
    push = Scope("repository", OWN, frozenset({"push"}))
    assert granted_actions(reviewer_with_images, push) == NONE


def test_allowed_actions_for_unknown_resources() -> None:
    assert allowed_actions(ADMIN, "registry", "other") == NONE
    assert allowed_actions(ADMIN, "plugin", "x") == NONE


def test_grant_narrows_and_drops_empty_scopes() -> None:
    requested = [
        Scope("repository", OWN, frozenset({"pull", "push"})),
        Scope("repository", OTHER, frozenset({"push"})),
        Scope("registry", "catalog", frozenset({"*"})),
    ]
    assert grant(USER, requested) == (
        Scope("repository", OWN, frozenset({"pull"})),
        Scope("registry", "catalog", frozenset({"*"})),
    )
    assert grant(ANON, requested, public=_public(False)) == (
        Scope("registry", "catalog", frozenset({"*"})),
    )
    assert grant(MAINTAINER, requested)[0].actions == PULL_PUSH


def test_public_namespaces_predicate() -> None:
    public = public_namespaces(["f25", "library"])
    assert public("f25/cockpit")
    assert public("library/busybox")
    assert not public("f25x/cockpit")
    assert not public("private/f25")
    pull = Scope("repository", "private/thing", frozenset({"pull"}))
    assert granted_actions(ANON, pull, public=public) == NONE
    assert (
        granted_actions(ANON, Scope("repository", OWN, frozenset({"pull"})), public=public) == PULL
    )
    assert everything_public("anything")


def test_principal_invariants() -> None:
    assert ANON.is_anonymous and ANON.subject == ""
    assert USER.subject == "user" and not USER.is_anonymous
    with pytest.raises(ValueError):
        Principal(None, frozenset({Role.ADMIN}))
    with pytest.raises(ValueError):
        Principal(None, images=frozenset({OWN}))
    with pytest.raises(ValueError):
        Principal("")
    with pytest.raises(ValueError):
        Principal("m", frozenset({Role.MAINTAINER}), frozenset({"F25/Cockpit"}))
    with pytest.raises(ValueError):
        Principal("m", frozenset({Role.MAINTAINER}), frozenset({"../x"}))
    with pytest.raises(ValueError):
        Principal("m", frozenset({"superuser"}))  # type: ignore[arg-type]
    coerced = Principal("m", frozenset({"admin"}))  # type: ignore[arg-type]
    assert coerced.roles == frozenset({Role.ADMIN})
