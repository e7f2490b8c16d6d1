"""Docker registry token authentication over HTTP: ``/auth/token`` and the ``/v2/`` gate.

Docker "Token Authentication Specification" and "OAuth2 Token Authentication"; RFC 6750 for the
challenge. :class:`TokenAuth` is the optional component ``create_app(…, auth=…)`` installs; with
``auth=None`` the registry is open (the api tests run that way).

The token endpoint
    ``GET /auth/token?service=…&scope=…[&scope=…]`` with Basic credentials, or none for an
    anonymous token; ``POST /auth/token`` with the OAuth2 form ``grant_type=password``,
    ``username``, ``password``, ``scope`` (space separated), ``service``. The answer carries an
    ES256 JWT holding the *granted* scopes (requested ∩ allowed: a partial grant is not an
    error). Refresh tokens are not issued and ``grant_type=refresh_token`` is refused: robots
    are the long-lived, revocable credential. A malformed scope or a foreign ``service`` is
    ``400 INVALID``; bad credentials ``401 UNAUTHORIZED``; too many failures
    ``429 TOOMANYREQUESTS`` with ``Retry-After``.

The gate (a middleware on every route under ``/v2``)
    computes what the request needs from the very route table and path tail the dispatcher uses
    (so no path trick can make the two disagree): ``pull`` for GET/HEAD, ``push`` for
    POST/PUT/PATCH, ``delete`` for DELETE, ``push`` for every upload-session request (cancelling
    one's own upload is part of pushing), ``pull`` on ``from`` too for a cross-repository mount,
    ``registry:catalog:*`` for ``/v2/_catalog``. Then, by credentials:

    - none: served if the anonymous client may (pulling a public repository, the catalog);
      otherwise ``401`` with ``WWW-Authenticate: Bearer realm=…,service=…,scope=…``. The base
      ``/v2/`` always answers ``401`` without credentials: it is the clients' auth probe
      (``podman login`` relies on it);
    - ``Bearer``: the token's signature, ``kid``, issuer, audience, expiry and not-before are
      checked (``401 … error="invalid_token"`` otherwise) and its ``access`` must cover the
      request. If it does not: ``403 DENIED`` with ``WWW-Authenticate: Bearer …,scope=…,
      error="insufficient_scope"`` (RFC 6750 section 3.1), whether or not the token's subject
      could obtain that scope (the answer does not depend on who asks, and clients that hold
      a token for another repository, like oras, fetch a new one on that challenge);
    - ``Basic``: accepted directly, for simple clients (curl, ``strata`` commands); the same
      login as the token endpoint (rate limited, argon2 cached briefly), then ``403 DENIED`` if
      the account may not.

    Before any of that, the names and references of the path are validated
    (:func:`strata.server.routes.check_params`, the dispatcher's own checks): an invalid
    repository name is ``400 NAME_INVALID`` for every account, admin included, and a malformed
    reference gets its 400/404 likewise. Nothing here looks at what exists, so unknown and
    forbidden repositories get the same answer.

The JSON API (``/api/…``)
    gets the request's principal resolved (Basic, or a bearer token whose account is loaded
    again and must still be the same account at the same credential generation; none =
    anonymous; bad credentials ``401``): :func:`request_principal` hands it to the API's
    ``authorize`` seam, which decides by role. A bearer token also limits the call to its
    ``strata:api`` scope (:func:`api_scope_refusal`): ``strata:api:read`` for the reads that
    need a role, ``strata:api:write`` for every change; a token without it (one for
    ``repository:…:pull``, or none at all) gets ``403 DENIED`` with an ``insufficient_scope``
    challenge naming the scope. Reads open to anonymous clients need no scope.

Tokens are bound to the account (``uid``) and its credential generation (``gen``): on
``/v2/`` and ``/api/`` every use compares them with the account's row, so revoke, disable,
password and role changes end earlier tokens at once.

The keys that sign and verify tokens are a :class:`~strata.auth.keyring.KeyRing`: for
``strata serve`` the keys in the database, which every node shares (a token from one node is
good on all of them) and which ``strata auth rotate-keys`` rotates while they run.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import aiohttp
from aiohttp import hdrs, web
from aiohttp.typedefs import Handler
from cryptography.hazmat.primitives.asymmetric import ec

from strata.auth.keyring import KeyRing, KeySet
from strata.auth.policy import Principal
from strata.auth.scope import (
    API,
    API_ACTIONS,
    CATALOG,
    DELETE,
    PULL,
    PUSH,
    REGISTRY,
    REPOSITORY,
    STRATA,
    WILDCARD,
    Scope,
    ScopeError,
    format_challenge,
    parse_scopes,
)
from strata.auth.service import AuthService, InvalidCredentials, LoginThrottled
from strata.auth.tokens import Claims, TokenInvalid, TokenIssuer, TokenVerifier
from strata.errors import Code, RegistryError
from strata.oci.names import RepositoryName
from strata.server.http import json_response
from strata.server.keys import PRINCIPAL
from strata.server.routes import ROUTES, check_params
from strata.server.urls import absolute_url

__all__ = ["AUTH", "DEFAULT_SERVICE", "TOKEN_PATH", "Requirement", "TokenAuth",
           "api_scope_refusal", "client_address", "parse_trusted_proxies", "request_principal",
           "required_access"]

TOKEN_PATH = "/auth/token"
DEFAULT_SERVICE = "strata"
DEFAULT_ISSUER = "strata-token-issuer"
TOKEN_TTL_SECONDS = 300
MAX_FORM_BYTES = 64 * 1024

_METHOD_ACTIONS = {"GET": PULL, "HEAD": PULL, "POST": PUSH, "PUT": PUSH, "PATCH": PUSH,
                   "DELETE": DELETE}
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@dataclass(frozen=True)
class Requirement:
    """What a ``/v2/`` request needs: every scope in :attr:`scopes` (none = any credentials)."""

    scopes: tuple[Scope, ...] = ()


def required_access(method: str, tail: str, query: Mapping[str, str]) -> Requirement:
    """The access a request for ``/v2/<tail>`` needs, matched exactly as ``routes.dispatch``.

    Names and references are validated first (:func:`strata.server.routes.check_params`),
    before any authorization: an invalid repository name is ``NAME_INVALID`` (400) for every
    account, anonymous or admin (the answer depends on syntax only)."""
    if tail == "":
        return Requirement()
    if tail == "_catalog":
        if method in ("GET", "HEAD"):
            return Requirement((Scope(REGISTRY, CATALOG, frozenset({WILDCARD})),))
        return Requirement()
    for route in ROUTES:
        match = route.pattern.match(tail)
        if match is None:
            continue
        if method not in route.methods:
            return Requirement()  # answered 405 UNSUPPORTED, whoever asks
        params = match.groupdict()
        name = check_params(method, params).value
        action = PUSH if "upload_id" in params else _METHOD_ACTIONS[method]
        scopes = [Scope(REPOSITORY, name, frozenset({action}))]
        source = query.get("from")
        if method == "POST" and "upload_id" not in params and query.get("mount") is not None \
                and source:
            RepositoryName.parse(source)
            scopes.append(Scope(REPOSITORY, source, frozenset({PULL})))
        return Requirement(tuple(scopes))
    return Requirement()  # answered 404 NOT_FOUND


def _challenge_scopes(need: Requirement) -> list[Scope]:
    """What to ask the client to fetch: a push also needs pull (HEAD checks, mounts)."""
    return [Scope(s.type, s.name, s.actions | {PULL}) if PUSH in s.actions else s
            for s in need.scopes]


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_trusted_proxies(values: Sequence[str]) -> tuple[IPNetwork, ...]:
    """``--trusted-proxy`` values (addresses or CIDR networks); ``ValueError`` names a bad one."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(f"--trusted-proxy wants an address or CIDR network, not "
                             f"{value[:60]!r}") from None
    return tuple(networks)


def client_address(remote: str | None, forwarded_for: Sequence[str],
                   trusted: Sequence[IPNetwork]) -> str:
    """The client a login's budget is counted for: the peer address, unless the peer is a
    trusted proxy (``--trusted-proxy``); then the right-most address of ``X-Forwarded-For``
    that is not a trusted proxy (each proxy appends the address it saw; what a client wrote
    itself is to the left of its real address and never chosen). A malformed entry stops the
    walk at the last trusted hop."""
    if not remote or not trusted:
        return remote or "unknown"
    try:
        peer = ipaddress.ip_address(remote)
    except ValueError:
        return remote
    if not any(peer in net for net in trusted):
        return remote
    hops = [h.strip() for value in forwarded_for for h in value.split(",") if h.strip()]
    chosen = remote
    for hop in reversed(hops[-32:]):
        try:
            address = ipaddress.ip_address(hop)
        except ValueError:
            break
        chosen = str(address)
        if not any(address in net for net in trusted):
            break
    return chosen


def _client_ip(request: web.Request) -> str:
    auth = request.app[AUTH]
    if not auth.trusted_proxies:
        return request.remote or "unknown"
    return client_address(request.remote, request.headers.getall("X-Forwarded-For", []),
                          auth.trusted_proxies)


@dataclass(frozen=True)
class TokenAuth:
    """Token issuing and checking for one registry ``service`` (the JWT audience)."""

    service: AuthService
    keys: KeyRing
    clock: Callable[[], float] = time.time
    realm: str | None = None  # absolute token URL; None = the app's public URL + TOKEN_PATH
    # proxies whose X-Forwarded-For names the client a login is counted for
    trusted_proxies: tuple[IPNetwork, ...] = ()

    @classmethod
    def create(cls, service: AuthService, signing_key: ec.EllipticCurvePrivateKey, *,
               service_name: str = DEFAULT_SERVICE, issuer_name: str = DEFAULT_ISSUER,
               ttl_seconds: int = TOKEN_TTL_SECONDS, clock: Callable[[], float] = time.time,
               realm: str | None = None) -> TokenAuth:
        """With one fixed key (tests, tools); ``strata serve`` uses :meth:`with_keys`."""
        ring = KeyRing(KeySet.of(signing_key), issuer_name=issuer_name, audience=service_name,
                       ttl_seconds=ttl_seconds)
        return cls(service, ring, clock, realm)

    @classmethod
    def with_keys(cls, service: AuthService, keys: KeyRing, *,
                  clock: Callable[[], float] = time.time,
                  trusted_proxies: tuple[IPNetwork, ...] = ()) -> TokenAuth:
        return cls(service, keys, clock, trusted_proxies=trusted_proxies)

    @property
    def issuer(self) -> TokenIssuer:
        """The issuer of the signing key loaded last (:meth:`KeyRing.current_issuer` looks
        for a newer one first)."""
        return self.keys.issuer

    @property
    def verifier(self) -> TokenVerifier:
        return self.keys.verifier

    def install(self, app: web.Application) -> None:
        """Register ``/auth/token`` and the ``/v2/`` gate on *app* (before it starts)."""
        app[AUTH] = self
        app.middlewares.append(auth_middleware)
        app.router.add_get(TOKEN_PATH, token_get)
        app.router.add_post(TOKEN_PATH, token_post)

    # -- pieces shared by the endpoint and the gate --------------------------------------
    def now(self) -> int:
        return int(self.clock())

    def realm_for(self, request: web.Request) -> str:
        """The token URL: from the configured public URL, never from the request's Host."""
        if self.realm is not None:
            return self.realm
        return absolute_url(request, TOKEN_PATH)

    def challenge(self, request: web.Request, need: Requirement,
                  error: str | None = None) -> RegistryError:
        """401 UNAUTHORIZED, or 403 DENIED for ``insufficient_scope``, with the challenge."""
        scopes = _challenge_scopes(need)
        header = format_challenge(self.realm_for(request), self.issuer.audience, scopes, error)
        detail = [str(s) for s in need.scopes] or None
        code = Code.DENIED if error == "insufficient_scope" else Code.UNAUTHORIZED
        return RegistryError(code, detail, headers={"WWW-Authenticate": header})

    async def login(self, request: web.Request, username: str, password: str,
                    on_failure: Callable[[], RegistryError]) -> Principal:
        try:
            return await self.service.login(username, password, _client_ip(request))
        except LoginThrottled as exc:
            raise RegistryError(Code.TOOMANYREQUESTS, message="too many failed logins",
                                headers={"Retry-After": str(exc.retry_after)}) from None
        except InvalidCredentials:
            raise on_failure() from None

    def check_service(self, service: str | None) -> None:
        if service is not None and service != self.issuer.audience:
            raise RegistryError(Code.INVALID, {"service": service[:100]},
                                message="unknown service")


AUTH = web.AppKey("strata.auth", TokenAuth)
#: The ``strata:api`` actions a bearer token grants (absent: Basic or no credentials).
API_GRANT = web.RequestKey("strata.api_grant", frozenset)


def request_principal(request: web.Request) -> Principal | None:
    """Who sent this ``/api/`` request (anonymous included), or this ``/v2/`` request with
    credentials (the upload bounds count per account); None when auth is off."""
    return request.get(PRINCIPAL)


def api_scope_refusal(request: web.Request, action: str) -> RegistryError | None:
    """None when the request's credentials cover ``strata:api:<action>``; else the 403
    ``insufficient_scope`` answer (with the challenge naming the scope to ask for).

    Only bearer tokens are limited by a scope: Basic credentials act with the account's roles.
    """
    granted = request.get(API_GRANT)
    if granted is None or action in granted:
        return None
    need = Requirement((Scope(STRATA, API, frozenset({action})),))
    return request.app[AUTH].challenge(request, need, "insufficient_scope")


# -- the token endpoint ---------------------------------------------------------------------
def _bad_login() -> RegistryError:
    return RegistryError(Code.UNAUTHORIZED, message="invalid user name or password",
                         headers={"WWW-Authenticate": 'Basic realm="strata", charset="UTF-8"'})


def _parse_scopes(values: list[str]) -> tuple[Scope, ...]:
    try:
        return parse_scopes(values)
    except ScopeError as exc:
        raise RegistryError(Code.INVALID, str(exc)[:300], message="invalid scope") from None


def _basic(header: str) -> aiohttp.BasicAuth | None:
    """The credentials of an ``Authorization: Basic …`` header; None if it is anything else."""
    try:
        return aiohttp.BasicAuth.decode(header.strip(), encoding="utf-8")
    except ValueError:  # not Basic, bad base64, no colon, not UTF-8
        return None


async def _token_response(auth: TokenAuth, principal: Principal, scopes: tuple[Scope, ...],
                          *, oauth: bool) -> web.Response:
    issuer = await auth.keys.current_issuer()
    issued = issuer.issue(principal.subject, auth.service.grant(principal, scopes),
                               auth.now(), uid=principal.uid, generation=principal.generation)
    body: dict[str, object] = {"token": issued.token, "access_token": issued.token,
                               "expires_in": issued.expires_in,
                               "issued_at": issued.issued_at_rfc3339}
    if oauth:
        body["token_type"] = "Bearer"
        body["scope"] = " ".join(str(s) for s in issued.access)
    return json_response(body, headers=_NO_STORE)


async def token_get(request: web.Request) -> web.StreamResponse:
    """``GET /auth/token``: Basic credentials (or none: anonymous) -> a token."""
    auth = request.app[AUTH]
    query = request.query
    auth.check_service(query.get("service"))
    scopes = _parse_scopes(query.getall("scope", []))
    header = request.headers.get(hdrs.AUTHORIZATION)
    principal = Principal.anonymous()
    if header is not None:
        creds = _basic(header)
        if creds is None:
            raise _bad_login()
        account = query.get("account")
        if account is not None and account != creds.login:
            raise RegistryError(Code.INVALID, message="account does not match the credentials")
        principal = await auth.login(request, creds.login, creds.password, _bad_login)
    return await _token_response(auth, principal, scopes, oauth=False)


async def token_post(request: web.Request) -> web.StreamResponse:
    """``POST /auth/token``: the OAuth2 password grant."""
    auth = request.app[AUTH]
    if request.content_length is not None and request.content_length > MAX_FORM_BYTES:
        raise RegistryError(Code.SIZE_INVALID, "form too large", status=413)
    form = await request.post()
    grant_type = form.get("grant_type")
    if grant_type != "password":
        raise RegistryError(Code.INVALID, {"grant_type": str(grant_type)[:40]},
                            message="unsupported grant_type (only password)")
    username, password = form.get("username"), form.get("password")
    if not isinstance(username, str) or not isinstance(password, str) or not username:
        raise RegistryError(Code.INVALID, message="username and password are required")
    service = form.get("service")
    auth.check_service(service if isinstance(service, str) else None)
    scopes = _parse_scopes([s for s in form.getall("scope", []) if isinstance(s, str)])
    principal = await auth.login(request, username, password, _bad_login)
    return await _token_response(auth, principal, scopes, oauth=True)


# -- the /v2/ gate --------------------------------------------------------------------------
def _denied() -> RegistryError:
    return RegistryError(Code.DENIED)


def _token_covers(claims: Claims, need: Requirement) -> bool:
    return all(claims.allows(s.type, s.name, action) for s in need.scopes for action in s.actions)


async def _check_bearer(auth: TokenAuth, request: web.Request, token: str,
                        need: Requirement) -> None:
    try:
        claims = await auth.keys.verify(token, auth.now())
    except TokenInvalid:
        raise auth.challenge(request, need, "invalid_token") from None
    # The token's grant was its account's when it was issued: the account as it is now must
    # be the same account (uid) at the same credential generation, enabled, and hold the roles
    # for the request (a revoke, disable, password or role change ends the token at once).
    principal = await auth.service.token_principal(claims.subject, claims.account_uid,
                                                   claims.generation)
    if principal is None:
        raise auth.challenge(request, need, "invalid_token")
    request[PRINCIPAL] = principal  # who pushes: upload sessions are counted per account
    if all(auth.service.allows(Principal.anonymous(), s) for s in need.scopes) and need.scopes:
        # What anybody may do (a public pull, the catalog) needs no scope in the token:
        # podman search asks for a token without one and then reads the catalog.
        return
    if not _token_covers(claims, need) or \
            not all(auth.service.allows(principal, s) for s in need.scopes):
        raise auth.challenge(request, need, "insufficient_scope")


async def _check_basic(auth: TokenAuth, request: web.Request, header: str,
                       need: Requirement) -> None:
    creds = _basic(header)
    if creds is None:
        raise auth.challenge(request, need)
    principal = await auth.login(request, creds.login, creds.password,
                                 lambda: auth.challenge(request, need))
    request[PRINCIPAL] = principal
    if not all(auth.service.allows(principal, s) for s in need.scopes):
        raise _denied()


def _resource(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return "" if resource is None else resource.canonical


def _api_actions(claims: Claims) -> frozenset[str]:
    """The ``strata:api`` actions *claims* grant (``*`` = all of them)."""
    actions: set[str] = set()
    for scope in claims.access:
        if (scope.type, scope.name) == (STRATA, API):
            actions |= API_ACTIONS if WILDCARD in scope.actions else scope.actions
    return frozenset(actions)


async def _api_principal(auth: TokenAuth, request: web.Request) -> Principal:
    header = request.headers.get(hdrs.AUTHORIZATION)
    if header is None:
        return Principal.anonymous()
    scheme, _, credentials = header.strip().partition(" ")
    if scheme.lower() == "bearer":
        try:
            claims = await auth.keys.verify(credentials.strip(), auth.now())
        except TokenInvalid:
            raise _bad_login() from None
        principal = await auth.service.token_principal(claims.subject, claims.account_uid,
                                                       claims.generation)
        if principal is None:
            raise _bad_login()
        request[API_GRANT] = _api_actions(claims)
        return principal
    creds = _basic(header)
    if creds is None:
        raise _bad_login()
    return await auth.login(request, creds.login, creds.password, _bad_login)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    resource = _resource(request)
    if resource.startswith("/api/"):
        request[PRINCIPAL] = await _api_principal(request.app[AUTH], request)
        return await handler(request)
    if resource != "/v2" and not resource.startswith("/v2/"):
        return await handler(request)
    auth = request.app[AUTH]
    need = required_access(request.method, request.match_info.get("tail", ""), request.query)
    header = request.headers.get(hdrs.AUTHORIZATION)
    if header is None:
        anonymous = Principal.anonymous()
        if not need.scopes or \
                not all(auth.service.allows(anonymous, s) for s in need.scopes):
            raise auth.challenge(request, need)
    else:
        scheme, _, credentials = header.strip().partition(" ")
        if scheme.lower() == "bearer":
            await _check_bearer(auth, request, credentials.strip(), need)
        elif scheme.lower() == "basic":
            await _check_basic(auth, request, header, need)
        else:
            raise auth.challenge(request, need)
    return await handler(request)
