"""Docker token-auth resource scopes: ``repository:f25/cockpit:pull,push``.

Grammar (Docker "Token Scope Documentation", restricted to what strata serves)::

    scope         := resourcescope [ ' ' resourcescope ]*
    resourcescope := resourcetype ':' resourcename ':' [ action [ ',' action ]* ]

Parsing follows Docker: the *first* colon ends the resource type and the
*last* colon starts the action list, everything in between is the name.  A
strata repository name never contains a colon (there is no ``host:port/``
prefix on this side of the wire), so ``repository:a:b:pull`` yields the name
``a:b``, which fails the OCI name grammar and is rejected.

Judgement calls:

* Three resource types exist: ``repository`` (name = OCI repository name),
  ``registry`` (name must be ``catalog``) and ``strata`` (name must be ``api``:
  the JSON API, actions ``read`` and ``write``).  Any other type, including the
  deprecated resource classes such as ``repository(plugin)``, is rejected with
  :class:`ScopeError` -- the token endpoint should answer ``400``.
* Actions must be *syntactically* valid (``[a-z][a-z0-9_-]*`` or ``*``; an
  empty element as in ``pull,,push`` is an error) but well-formed actions that
  strata does not know (``metadata_read``…) are silently **dropped**, which is
  Docker's "grant what you can" semantics: the token simply will not carry
  them and the registry refuses later.  A scope may therefore end up with an
  empty action set; it formats as ``type:name:`` and parses back the same.
* Every :class:`Scope` instance is valid: the constructor re-validates, so a
  scope built from untrusted data (e.g. a JWT ``access`` entry) cannot smuggle
  an invalid name or action.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = [
    "API",
    "API_ACTIONS",
    "CATALOG",
    "DELETE",
    "MAX_NAME_LENGTH",
    "MAX_SCOPES",
    "PULL",
    "PUSH",
    "READ",
    "REGISTRY",
    "REPOSITORY",
    "REPOSITORY_ACTIONS",
    "STRATA",
    "WILDCARD",
    "WRITE",
    "Scope",
    "ScopeError",
    "format_challenge",
    "is_valid_repository_name",
    "merge_scopes",
    "parse_scopes",
]

REPOSITORY = "repository"
REGISTRY = "registry"
CATALOG = "catalog"
#: The JSON API (``/api/v1``): ``strata:api:read`` and ``strata:api:write``.
STRATA = "strata"
API = "api"

PULL = "pull"
PUSH = "push"
DELETE = "delete"
READ = "read"
WRITE = "write"
WILDCARD = "*"

REPOSITORY_ACTIONS: frozenset[str] = frozenset({PULL, PUSH, DELETE})
API_ACTIONS: frozenset[str] = frozenset({READ, WRITE})

#: Maximum length of a repository name (OCI distribution-spec).
MAX_NAME_LENGTH = 255
#: Upper bound on one scope string; anything longer cannot be valid.
MAX_SCOPE_LENGTH = 512
#: Upper bound on the number of scopes accepted in one token request.
MAX_SCOPES = 64

_KNOWN_ACTIONS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        REPOSITORY: REPOSITORY_ACTIONS | {WILDCARD},
        REGISTRY: frozenset({WILDCARD}),
        STRATA: API_ACTIONS | {WILDCARD},
    }
)
_ACTION_ORDER = (PULL, PUSH, DELETE, READ, WRITE, WILDCARD)

# OCI distribution-spec repository name grammar.  Separators and alphanumeric
# runs are disjoint character classes, so the pattern cannot backtrack badly;
# the length is checked before matching anyway.
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_NAME_RE = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_ACTION_RE = re.compile(r"[a-z][a-z0-9_-]*|\*")

_CHALLENGE_ERRORS = frozenset({"invalid_request", "invalid_token", "insufficient_scope"})


class ScopeError(ValueError):
    """A scope string or access entry is malformed or names an invalid resource."""


def is_valid_repository_name(name: str) -> bool:
    """True when *name* is an OCI repository name (lower case, ``/``-separated, ≤ 255)."""
    return (
        isinstance(name, str)
        and 0 < len(name) <= MAX_NAME_LENGTH
        and name.isascii()
        and _NAME_RE.fullmatch(name) is not None
    )


def _action_key(action: str) -> int:
    return _ACTION_ORDER.index(action)  # every action held by a Scope is a known one


@dataclass(frozen=True)
class Scope:
    """One resource scope: resource *type*, resource *name* and granted/requested *actions*."""

    type: str
    name: str
    actions: frozenset[str]

    def __post_init__(self) -> None:
        if not isinstance(self.actions, frozenset):
            object.__setattr__(self, "actions", frozenset(self.actions))
        known = _KNOWN_ACTIONS.get(self.type)
        if known is None:
            raise ScopeError(f"unsupported resource type {self.type!r}")
        if self.type == REGISTRY:
            if self.name != CATALOG:
                raise ScopeError(f"unsupported registry resource {self.name!r}")
        elif self.type == STRATA:
            if self.name != API:
                raise ScopeError(f"unsupported strata resource {self.name[:100]!r}")
        elif not is_valid_repository_name(self.name):
            raise ScopeError(f"invalid repository name {self.name[:300]!r}")
        for action in self.actions:
            if not isinstance(action, str) or action not in known:
                raise ScopeError(f"unsupported action {action!r} for {self.type}")

    @classmethod
    def parse(cls, text: str) -> Scope:
        """Parse one ``type:name:actions`` scope (see the module docstring for the rules)."""
        if not isinstance(text, str):
            raise ScopeError("scope must be a string")
        if len(text) > MAX_SCOPE_LENGTH:
            raise ScopeError("scope too long")
        scope_type, sep, rest = text.partition(":")
        if not sep:
            raise ScopeError(f"malformed scope {text!r}: expected type:name:actions")
        name, sep, actions_text = rest.rpartition(":")
        if not sep:
            raise ScopeError(f"malformed scope {text!r}: expected type:name:actions")
        if scope_type not in _KNOWN_ACTIONS:
            raise ScopeError(f"unsupported resource type {scope_type!r}")
        known = _KNOWN_ACTIONS[scope_type]
        actions: set[str] = set()
        if actions_text:
            for action in actions_text.split(","):
                if _ACTION_RE.fullmatch(action) is None:
                    raise ScopeError(f"malformed action {action!r} in scope {text!r}")
                if action in known:
                    actions.add(action)
        return cls(scope_type, name, frozenset(actions))

    def sorted_actions(self) -> list[str]:
        """The actions in canonical order (``pull``, ``push``, ``delete``, ``*``)."""
        return sorted(self.actions, key=_action_key)

    def __str__(self) -> str:
        return f"{self.type}:{self.name}:{','.join(self.sorted_actions())}"

    def to_access(self) -> dict[str, object]:
        """The JWT ``access`` claim entry for this scope."""
        return {"type": self.type, "name": self.name, "actions": self.sorted_actions()}

    @classmethod
    def from_access(cls, entry: object) -> Scope:
        """Build a scope from a JWT ``access`` entry; unknown actions are an error here."""
        if not isinstance(entry, dict) or set(entry) != {"type", "name", "actions"}:
            raise ScopeError("access entry must be an object with type, name and actions")
        scope_type, name, actions = entry["type"], entry["name"], entry["actions"]
        if not isinstance(scope_type, str) or not isinstance(name, str):
            raise ScopeError("access entry type and name must be strings")
        if not isinstance(actions, list) or not all(isinstance(a, str) for a in actions):
            raise ScopeError("access entry actions must be a list of strings")
        return cls(scope_type, name, frozenset(actions))


def merge_scopes(scopes: Iterable[Scope]) -> tuple[Scope, ...]:
    """Union the actions of scopes naming the same resource, keeping first-seen order."""
    merged: dict[tuple[str, str], set[str]] = {}
    for scope in scopes:
        merged.setdefault((scope.type, scope.name), set()).update(scope.actions)
    return tuple(Scope(t, n, frozenset(a)) for (t, n), a in merged.items())


def parse_scopes(values: Iterable[str], *, max_scopes: int = MAX_SCOPES) -> tuple[Scope, ...]:
    """Parse the ``scope`` parameter(s) of a token request.

    Each value may hold several space-separated scopes (OAuth2 ``POST`` form)
    and the parameter may be repeated (``GET`` form); both are accepted and
    combined.  Empty values (a refresh-token-only request) contribute nothing.
    Scopes naming the same resource are merged.  Raises :class:`ScopeError`
    on any malformed scope or when more than *max_scopes* are supplied.
    """
    parsed: list[Scope] = []
    for value in values:
        if not isinstance(value, str):
            raise ScopeError("scope must be a string")
        for piece in value.split(" "):
            if not piece:
                continue
            if len(parsed) >= max_scopes:
                raise ScopeError(f"too many scopes (limit {max_scopes})")
            parsed.append(Scope.parse(piece))
    return merge_scopes(parsed)


def _quote(value: str, what: str) -> str:
    if not value.isascii() or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ValueError(f"{what} must be printable ASCII")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_challenge(
    realm: str,
    service: str,
    scopes: Iterable[Scope] = (),
    error: str | None = None,
) -> str:
    """The ``WWW-Authenticate`` header value for a Bearer challenge.

    Produces ``Bearer realm="…",service="…"[,scope="a b"][,error="…"]`` in the
    order the CNCF Distribution registry uses.  Scopes are merged and scopes
    without actions are omitted.  *error* must be one of the RFC 6750 codes
    (``invalid_request``, ``invalid_token``, ``insufficient_scope``).
    """
    parts = [f"realm={_quote(realm, 'realm')}", f"service={_quote(service, 'service')}"]
    scope_value = " ".join(str(s) for s in merge_scopes(scopes) if s.actions)
    if scope_value:
        parts.append(f"scope={_quote(scope_value, 'scope')}")
    if error is not None:
        if error not in _CHALLENGE_ERRORS:
            raise ValueError(f"unsupported Bearer challenge error {error!r}")
        parts.append(f'error="{error}"')
    return "Bearer " + ",".join(parts)
