"""The auth tier: the app with token authentication on, in-process, over a fresh SQLite copy.

Accounts (created once in a template database with a cheap argon2 profile):

========== ===================================== ===========================
account    role                                  secret
========== ===================================== ===========================
admin      admin                                 password
releng     releng                                password
maint      maintainer of ``f25/cockpit``          password
other      maintainer of ``f25/other``            password
reviewer   reviewer                              password
robot      robot, releng (``strata robot add``)  robot token
robot-m    robot, maintainer of ``f25/cockpit``   robot token
========== ===================================== ===========================
"""

from __future__ import annotations

import shutil
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiohttp import web
from argon2 import PasswordHasher
from cryptography.hazmat.primitives.asymmetric import ec

from strata.auth.passwords import PasswordHashing
from strata.auth.policy import Role, everything_public
from strata.auth.service import AuthService, LoginLimits
from strata.meta.account_store import SqlAccountStore
from strata.meta.connection import create_engine, migrate, sqlite_url
from strata.meta.database import Database
from strata.meta.key_store import KeyStore
from strata.meta.rebuild_store import RebuildStore
from strata.meta.registry_store import RegistryStore
from strata.registry.limits import Limits
from strata.registry.service import Registry
from strata.release.policy import ReleaseTagPolicy
from strata.review.checks import Checker
from strata.server.api.context import ReleaseApi
from strata.server.app import create_app
from strata.server.auth import TokenAuth
from strata.server.urls import PublicUrl
from strata.storage.filesystem import FilesystemBlobStore
from strata.trust.attach import Attestations
from strata.trust.keys import Passphrase
from strata.trust.service import TrustService
from strata.trust.signer import TrustSigner
from support.clock import SettableClock as FakeClock
from support.release import release_engine, webhook_sender

from .helpers import Client, basic, bearer

IMAGE = "f25/cockpit"
OTHER_IMAGE = "f25/other"
BASE_IMAGE = "f25/base"
USERS: dict[str, tuple[Role, tuple[str, ...]]] = {
    "admin": (Role.ADMIN, ()),
    "releng": (Role.RELENG, ()),
    "maint": (Role.MAINTAINER, (IMAGE,)),
    "other": (Role.MAINTAINER, (OTHER_IMAGE,)),
    "reviewer": (Role.REVIEWER, ()),
}
ROBOTS: dict[str, tuple[Role, tuple[str, ...]]] = {
    "robot": (Role.RELENG, ()),
    "robot-m": (Role.MAINTAINER, (IMAGE,)),
}

ClientFactory = Callable[..., Awaitable[Client]]


def fast_hashing() -> PasswordHashing:
    return PasswordHashing(PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


def password_of(name: str) -> str:
    return f"{name}-correct-horse"


@dataclass(frozen=True)
class Template:
    db: Path
    secrets: dict[str, str]


@pytest.fixture(scope="session")
def auth_template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    root = tmp_path_factory.mktemp("auth-template")
    engine = create_engine(sqlite_url(root))
    migrate(engine)
    service = AuthService(SqlAccountStore(Database(engine)), fast_hashing())
    secrets = {}
    for name, (role, images) in USERS.items():
        service.add_user(name, password_of(name), role, images)
        secrets[name] = password_of(name)
    for name, (role, images) in ROBOTS.items():
        secrets[name] = service.add_robot(name, role, images)[1]
    engine.dispose()
    return Template(root / "strata.db", secrets)


@pytest.fixture(scope="session")
def signing_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@dataclass
class AuthEnv:
    client: Client
    auth: TokenAuth
    service: AuthService
    secrets: dict[str, str]
    clock: FakeClock
    engine: sa.Engine
    data_dir: Path

    def creds(self, account: str) -> dict[str, str]:
        return basic(account, self.secrets[account])

    async def token(self, account: str | None, *scopes: str) -> str:
        """A token from ``GET /auth/token`` (anonymous when *account* is None)."""
        headers = self.creds(account) if account else {}
        resp = await self.client.get("/auth/token", params=[("service", "strata"),
                                                            *(("scope", s) for s in scopes)],
                                     headers=headers)
        assert resp.status == 200, await resp.text()
        token: str = (await resp.json())["token"]
        return token

    async def auth_headers(self, account: str | None, mode: str, *scopes: str
                           ) -> dict[str, str]:
        """Credentials for *account*: ``bearer`` (a token for *scopes*), ``basic`` or none."""
        if mode == "none":
            return {}
        if mode == "basic":
            assert account is not None
            return self.creds(account)
        return bearer(await self.token(account, *scopes))


EnvFactory = Callable[..., Awaitable[AuthEnv]]


@pytest.fixture
def make_env(aiohttp_client: ClientFactory, tmp_path: Path, auth_template: Template,
             signing_key: ec.EllipticCurvePrivateKey) -> Iterator[EnvFactory]:
    engines: list[sa.Engine] = []
    stores: list[Database] = []

    async def build(*, public: Callable[[str], bool] = everything_public,
                    limits: LoginLimits | None = None, cache_ttl: float = 60.0,
                    hashing: PasswordHashing | None = None, release: bool = False,
                    data_from: Path | None = None,
                    public_url: PublicUrl | None = None,
                    registry_limits: Limits | None = None,
                    source_allow: tuple[str, ...] = ("https://",),
                    checker: Checker | None = None,
                    signing: Passphrase | None = None) -> AuthEnv:
        data = tmp_path / f"data{len(engines)}"
        if data_from is not None:  # a data dir prepared earlier (database and blobs)
            shutil.copytree(data_from, data)
        else:
            data.mkdir()
            shutil.copyfile(auth_template.db, data / "strata.db")
        engine = create_engine(sqlite_url(data))
        engines.append(engine)
        stores.append(Database(engine))
        # with the release API, the stream rules too, as ``strata serve`` runs them
        registry = Registry.build(RegistryStore(stores[-1]), FilesystemBlobStore(data),
                                  limits=registry_limits,
                                  policy=ReleaseTagPolicy() if release else None)
        clock = FakeClock()
        service = AuthService(SqlAccountStore(stores[-1]), hashing or fast_hashing(),
                              public=public, limits=limits, cache_ttl=cache_ttl, clock=clock)
        auth = TokenAuth.create(service, signing_key)
        api = None
        if release:
            # with ``signing``, releases are signed and get their SBOM and provenance as in
            # ``strata serve`` (issue 16)
            signer = TrustSigner(registry, signing, public_host="registry.example")
            attestations = Attestations(registry, RebuildStore(stores[-1]),
                                        host="registry.example", signer=signer)
            api = ReleaseApi(release_engine(engine, registry, public_host="registry.example",
                                            signer=attestations if signing else None),
                             webhook_sender(engine), scheduler_interval=0, webhook_interval=0,
                             source_allow=source_allow, checker=checker,
                             trust=TrustService(KeyStore(stores[-1]), signer))
        app: web.Application = create_app(registry, housekeeping_interval=0, auth=auth,
                                          release=api, public_url=public_url)
        client = await aiohttp_client(app)
        return AuthEnv(client, auth, service, dict(auth_template.secrets), clock, engine, data)

    yield build
    for store in stores:
        store.close()
    for engine in engines:
        engine.dispose()


@pytest.fixture
async def env(make_env: EnvFactory) -> AuthEnv:
    return await make_env()
