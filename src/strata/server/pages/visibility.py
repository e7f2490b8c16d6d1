"""Who sees what in the catalog: the registry's own pull rule, applied to pages and JSON.

The pages are anonymous (a browser sends no registry credentials): they show a repository only
if an anonymous client may pull it (``AuthService.public``; everything with authentication off
or with the default public registry). The ``/api/v1/browse`` JSON is shown to the request's
principal as its pull rights allow. A namespace counts as a name of its own (a namespace is
visible when its first component is public).
"""

from __future__ import annotations

from aiohttp import web

from strata.auth.policy import Principal
from strata.auth.scope import PULL, REPOSITORY, Scope, ScopeError
from strata.catalog.views import Visibility, everyone
from strata.server.auth import AUTH, request_principal


def anonymous(request: web.Request) -> Visibility:
    """What an anonymous client may see (the pages)."""
    auth = request.app.get(AUTH)
    return everyone if auth is None else auth.service.public


def for_principal(request: web.Request) -> Visibility:
    """What the request's principal may see (the JSON API; anonymous as the pages)."""
    auth = request.app.get(AUTH)
    principal = request_principal(request)
    if auth is None or principal is None:
        return everyone
    if principal.is_anonymous:
        return auth.service.public
    service = auth.service

    def visible(name: str, who: Principal = principal) -> bool:
        try:
            return service.allows(who, Scope(REPOSITORY, name, frozenset({PULL})))
        except ScopeError:
            return False
    return visible
