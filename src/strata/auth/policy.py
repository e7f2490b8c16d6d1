"""Who may do what: roles, principals and the scope-granting policy.

The token endpoint calls :func:`grant` with the authenticated principal (or
:meth:`Principal.anonymous`) and the requested scopes; the result is the
*intersection* of what was requested and what the principal is allowed,
exactly as the Docker token spec demands ("grant what you can" -- a partial
or empty grant is not an error; the registry refuses later, with
``insufficient_scope``).

Matrix for ``repository:<name>``:

============== ============================ ========== =========
principal      pull                         push       delete
============== ============================ ========== =========
anonymous      if ``public(name)``          no         no
any user       if ``public(name)``          no         no
reviewer       yes (read-only role)         no         no
maintainer     yes, if ``name`` ∈ images    if ∈ images no
releng         yes                          yes        yes
admin          yes                          yes        yes
============== ============================ ========== =========

``maintainer`` covers the *exact* repository names in ``Principal.images``
(``f25/cockpit`` does not cover ``f25/cockpit-ws`` nor ``f25/cockpit/sub``).
``robot`` is a marker for non-human accounts authenticated by a robot secret:
it grants nothing by itself, a robot that pushes carries ``maintainer`` plus
its images.  ``registry:catalog:*`` is granted to everyone, anonymous
included (the catalog is public). ``strata:api:read`` and ``strata:api:write`` (the JSON API's
changes) go to admin, releng, maintainer and reviewer accounts (reviewers write reviews); the
account's roles still decide each API call on top of the token's scope.  A requested ``*`` on a
repository expands to ``pull``, ``push`` and ``delete`` before the intersection, so the token
only ever lists concrete repository actions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from strata.auth.scope import (
    API,
    API_ACTIONS,
    CATALOG,
    PULL,
    PUSH,
    REGISTRY,
    REPOSITORY,
    REPOSITORY_ACTIONS,
    STRATA,
    WILDCARD,
    Scope,
    is_valid_repository_name,
)

__all__ = [
    "Principal",
    "Role",
    "allowed_actions",
    "everything_public",
    "grant",
    "granted_actions",
    "public_namespaces",
]


class Role(StrEnum):
    ADMIN = "admin"
    RELENG = "releng"
    MAINTAINER = "maintainer"
    REVIEWER = "reviewer"
    ROBOT = "robot"


@dataclass(frozen=True)
class Principal:
    """An authenticated account (``name``) or the anonymous client (``name is None``).

    ``uid`` and ``generation`` say which account and which credential generation of it the
    principal was read from (what a token issued to it is bound to); not part of equality.
    """

    name: str | None
    roles: frozenset[Role] = frozenset()
    images: frozenset[str] = frozenset()
    uid: str | None = field(default=None, compare=False)
    generation: int | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "roles", frozenset(Role(r) for r in self.roles))
        object.__setattr__(self, "images", frozenset(self.images))
        if self.name is None:
            if self.roles or self.images:
                raise ValueError("the anonymous principal has no roles or images")
        elif not isinstance(self.name, str) or not self.name:
            raise ValueError("principal name must be a non-empty string")
        for image in self.images:
            if not is_valid_repository_name(image):
                raise ValueError(f"invalid image name {image!r}")

    @classmethod
    def anonymous(cls) -> Principal:
        return cls(None)

    @property
    def is_anonymous(self) -> bool:
        return self.name is None

    @property
    def subject(self) -> str:
        """The JWT ``sub`` for this principal (``""`` when anonymous, per the spec)."""
        return self.name or ""


def everything_public(name: str) -> bool:
    """Default visibility predicate: every repository is publicly pullable."""
    return True


def public_namespaces(namespaces: Iterable[str]) -> Callable[[str], bool]:
    """A predicate making public exactly the repositories whose first component is listed."""
    allowed = frozenset(namespaces)

    def is_public(name: str) -> bool:
        return name.split("/", 1)[0] in allowed

    return is_public


def allowed_actions(
    principal: Principal,
    scope_type: str,
    name: str,
    *,
    public: Callable[[str], bool] = everything_public,
) -> frozenset[str]:
    """Everything *principal* may do on the resource, regardless of what was asked."""
    if scope_type == REGISTRY:
        return frozenset({WILDCARD}) if name == CATALOG else frozenset()
    if scope_type == STRATA:
        return _api_actions(principal) if name == API else frozenset()
    if scope_type != REPOSITORY:
        return frozenset()
    roles = principal.roles
    if Role.ADMIN in roles or Role.RELENG in roles:
        return REPOSITORY_ACTIONS
    maintainer = Role.MAINTAINER in roles and name in principal.images
    allowed: set[str] = set()
    if maintainer:
        allowed.update((PULL, PUSH))
    if Role.REVIEWER in roles or public(name):
        allowed.add(PULL)
    return frozenset(allowed)


def _api_actions(principal: Principal) -> frozenset[str]:
    """``strata:api``: ``read`` and ``write`` for the roles that change anything through the
    JSON API (admin, releng, maintainer, reviewer: reviews); nothing for anyone else (an
    account without a role submits and comments with its password)."""
    roles = principal.roles
    if roles & {Role.ADMIN, Role.RELENG, Role.MAINTAINER, Role.REVIEWER}:
        return API_ACTIONS  # reviewers write reviews (comment, approve, reject): issue 14
    return frozenset()


def granted_actions(
    principal: Principal,
    requested: Scope,
    *,
    public: Callable[[str], bool] = everything_public,
) -> frozenset[str]:
    """Requested actions ∩ allowed actions (a repository ``*`` is expanded first)."""
    wanted = requested.actions
    if requested.type == REPOSITORY and WILDCARD in wanted:
        wanted = (wanted - {WILDCARD}) | REPOSITORY_ACTIONS
    elif requested.type == STRATA and WILDCARD in wanted:
        wanted = (wanted - {WILDCARD}) | API_ACTIONS
    allowed = allowed_actions(principal, requested.type, requested.name, public=public)
    return wanted & allowed


def grant(
    principal: Principal,
    requested: Iterable[Scope],
    *,
    public: Callable[[str], bool] = everything_public,
) -> tuple[Scope, ...]:
    """The scopes to put in the token: each requested scope narrowed, empty ones dropped."""
    granted: list[Scope] = []
    for scope in requested:
        actions = granted_actions(principal, scope, public=public)
        if actions:
            granted.append(Scope(scope.type, scope.name, actions))
    return tuple(granted)
