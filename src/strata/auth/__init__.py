"""HTTP-free building blocks for Docker registry token authentication.

strata implements the Docker/CNCF Distribution *token authentication* scheme:
the registry answers unauthenticated or under-privileged requests with
``401`` and a ``WWW-Authenticate: Bearer realm=…,service=…,scope=…`` challenge,
the client fetches a short-lived ES256 JWT from the token endpoint (``GET``
with Basic credentials, or the OAuth2 ``POST`` with ``grant_type=password`` /
``refresh_token``), and retries with ``Authorization: Bearer <jwt>``.

This package holds only the pure pieces the HTTP server composes:

* :mod:`strata.auth.scope` -- strict parsing/formatting of ``type:name:actions``
  scopes and of the challenge header value.
* :mod:`strata.auth.keys` -- the on-disk EC P-256 signing key and its libtrust
  key id (the JWT ``kid``).
* :mod:`strata.auth.tokens` -- issuing and verifying the bearer JWTs.
* :mod:`strata.auth.passwords` -- argon2id password hashes and robot secrets.
* :mod:`strata.auth.policy` -- roles and the scope-granting policy.
* :mod:`strata.auth.ratelimit` -- a bounded-memory token-bucket limiter.
* :mod:`strata.auth.accounts` -- accounts, their rules, and the store port (the SQL store is
  :class:`strata.meta.account_store.SqlAccountStore`).
* :mod:`strata.auth.service` -- the use-cases: logins, grants, accounts, the first admin.

Only :mod:`strata.auth.keys` (the key file) and :mod:`strata.auth.service` (through the
account store it is given; the generated admin password file) perform I/O; nothing here
imports SQLAlchemy, and nothing keeps module-level mutable state.
"""
