"""The authorisation seam of the /api/v1 handlers.

Every handler calls :func:`authorize` with the role its use-case needs, before doing anything:

* ``releng`` (or ``admin``): publish, out-of-band releases, rollbacks, end-of-life, namespaces,
  images, webhooks;
* ``maintainer`` (of the image, or ``releng``/``admin``): candidate add and withdraw, the
  image's source and summary;
* ``reviewer`` (or ``releng``/``admin``): approve or reject a review request;
* ``account`` (any authenticated account): submit an image for review, comment;
* ``reader``: everything that only reads (open to anonymous users today).

A bearer token acts only within its ``strata:api`` scope (``read`` for the GETs that need a
role, ``write`` for every change); Basic credentials act with the account's roles.

With authentication on, the auth middleware (:mod:`strata.server.auth`) has resolved the
request's principal (Basic or bearer; anonymous without credentials): a call without the role
is refused with ``UNAUTHORIZED`` when anonymous and ``DENIED`` otherwise, naming the missing
right (``needs role releng or admin``, ``needs maintainer of f25/b (or role releng or
admin)``; ``maintainer`` must also maintain ``resource``, the image's repository; ``admin``
may do everything), and
:func:`actor` is the verified account name. With authentication off (``--no-auth``, or an app
built without ``auth``) every call is allowed and :func:`actor` records the user name the
client *claims* (Basic auth), unverified.
"""

from __future__ import annotations

import base64
import binascii
from enum import StrEnum

from aiohttp import web

from strata.auth.policy import Role
from strata.auth.scope import READ, WRITE
from strata.errors import Code, RegistryError
from strata.server.auth import api_scope_refusal, request_principal


class Need(StrEnum):
    READER = "reader"
    ACCOUNT = "account"  # any authenticated account (a review's submitter)
    REVIEWER = "reviewer"  # reviewer, releng or admin
    MAINTAINER = "maintainer"
    RELENG = "releng"
    ADMIN = "admin"


def authorize(request: web.Request, role: Need, resource: str | None = None) -> None:
    """Refuse the request unless its principal has ``role`` (a no-op with auth off) and, with a
    bearer token, the token's scope covers it (``strata:api:read`` for a GET, else
    ``strata:api:write``). Call it before reading the request body."""
    principal = request_principal(request)
    if principal is None or role is Need.READER:
        return None
    if principal.is_anonymous:
        raise RegistryError(Code.UNAUTHORIZED,
                            headers={"WWW-Authenticate": 'Basic realm="strata", charset="UTF-8"'})
    refusal = api_scope_refusal(request, READ if request.method in ("GET", "HEAD") else WRITE)
    if refusal is not None:
        raise refusal
    roles = principal.roles
    if Role.ADMIN in roles or (role is not Need.ADMIN and Role.RELENG in roles):
        return None
    if role is Need.ACCOUNT or (role is Need.REVIEWER and Role.REVIEWER in roles):
        return None
    if role is Need.MAINTAINER and Role.MAINTAINER in roles and \
            (resource is None or resource in principal.images):
        # resource None: a maintainer of some image (the check made before reading a body
        # that names the image; the handler checks that image once it knows it)
        return None
    raise denied(role, resource)


def is_reviewer(request: web.Request) -> bool:
    """Whether the caller is a reviewer, releng or admin (always, with authentication off)."""
    principal = request_principal(request)
    return principal is None or bool(principal.roles & {Role.ADMIN, Role.RELENG,
                                                        Role.REVIEWER})


def enforced(request: web.Request) -> bool:
    """Whether accounts are verified (authentication on): the actor is who they say."""
    return request_principal(request) is not None


def is_releng(request: web.Request) -> bool:
    """Whether the caller acts as releng or admin (always, with authentication off); call it
    after :func:`authorize` has let the request through."""
    principal = request_principal(request)
    return principal is None or bool(principal.roles & {Role.ADMIN, Role.RELENG})


def denied(role: Need, resource: str | None = None) -> RegistryError:
    """403 naming the right that was missing (``needs role releng or admin``)."""
    if role is Need.MAINTAINER and resource is None:
        needs = "needs role maintainer (of the image), releng or admin"
    elif role is Need.MAINTAINER:
        needs = f"needs maintainer of {resource} (or role releng or admin)"
    elif role is Need.RELENG:
        needs = "needs role releng or admin"
    elif role is Need.REVIEWER:
        needs = "needs role reviewer, releng or admin"
    else:
        needs = f"needs role {role.value}"
    return RegistryError(Code.DENIED, {"needs": needs},
                         message=f"{Code.DENIED.message}: {needs}")


def actor(request: web.Request) -> str:
    """Who is acting, for the records (the claimed Basic-auth user when auth is off)."""
    principal = request_principal(request)
    if principal is not None:
        return principal.name or "anonymous"
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return "anonymous"
    try:
        login = base64.b64decode(value.strip(), validate=True).decode().partition(":")[0]
    except (ValueError, binascii.Error):
        return "anonymous"
    return login[:255] or "anonymous"
