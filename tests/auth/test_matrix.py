"""Every /v2/ route x every role: allowed with the route's success status, or refused with
UNAUTHORIZED (401, no credentials) / DENIED (403, credentials without the right).

Credentials come three ways: none, a bearer token fetched from ``/auth/token`` for the
route's scope (the client flow), and Basic directly on /v2/.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from .conftest import BASE_IMAGE, IMAGE, AuthEnv, EnvFactory
from .helpers import OCI_MANIFEST, assert_refused, digest, make_image, parse_challenge

SEED = make_image("matrix")
NEW = make_image("matrix-new")
MOUNTABLE = b"a layer that lives in f25/base" * 10
CHUNK = b"chunk of an upload"


@dataclass(frozen=True)
class Seeded:
    upload: str  # Location of an open upload session in IMAGE


async def seed(env: AuthEnv) -> Seeded:
    """Push SEED as ``IMAGE:1.0``, NEW's blobs, a blob to mount, and open an upload session."""
    client, admin = env.client, env.creds("admin")
    for repo, blob in [(IMAGE, SEED.config), (IMAGE, SEED.layer), (BASE_IMAGE, MOUNTABLE),
                       (IMAGE, NEW.config), (IMAGE, NEW.layer)]:
        resp = await client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": digest(blob)},
                                 data=blob, headers=admin)
        assert resp.status == 201, await resp.text()
    resp = await client.put(f"/v2/{IMAGE}/manifests/1.0", data=SEED.manifest,
                            headers={**admin, "Content-Type": OCI_MANIFEST})
    assert resp.status == 201, await resp.text()
    resp = await client.post(f"/v2/{IMAGE}/blobs/uploads/", headers=admin)
    assert resp.status == 202
    return Seeded(resp.headers["Location"])


@dataclass(frozen=True)
class Op:
    name: str
    method: str
    path: Callable[[Seeded], str]
    ok: int
    need: str  # "base", "pull", "catalog", "push", "delete"
    body: bytes | None = None
    params: dict[str, str] | None = None
    headers: dict[str, str] | None = None
    extra_scope: str | None = None  # a second repository the route reads (mount's from=)


PULL = f"repository:{IMAGE}:pull"
PUSH = f"repository:{IMAGE}:pull,push"
DELETE = f"repository:{IMAGE}:delete"
CATALOG = "registry:catalog:*"

OPS = [
    Op("base", "GET", lambda s: "/v2/", 200, "base"),
    Op("catalog", "GET", lambda s: "/v2/_catalog", 200, "catalog"),
    Op("tags", "GET", lambda s: f"/v2/{IMAGE}/tags/list", 200, "pull"),
    Op("manifest-get", "GET", lambda s: f"/v2/{IMAGE}/manifests/1.0", 200, "pull"),
    Op("manifest-head", "HEAD", lambda s: f"/v2/{IMAGE}/manifests/{SEED.digest}", 200, "pull"),
    Op("blob-get", "GET", lambda s: f"/v2/{IMAGE}/blobs/{SEED.layer_digest}", 200, "pull"),
    Op("blob-head", "HEAD", lambda s: f"/v2/{IMAGE}/blobs/{SEED.layer_digest}", 200, "pull"),
    Op("referrers", "GET", lambda s: f"/v2/{IMAGE}/referrers/{SEED.digest}", 200, "pull"),
    Op("upload-start", "POST", lambda s: f"/v2/{IMAGE}/blobs/uploads/", 202, "push"),
    Op("upload-monolithic", "POST", lambda s: f"/v2/{IMAGE}/blobs/uploads/", 201, "push",
       body=CHUNK, params={"digest": digest(CHUNK)}),
    Op("mount", "POST", lambda s: f"/v2/{IMAGE}/blobs/uploads/", 201, "push",
       params={"mount": digest(MOUNTABLE), "from": BASE_IMAGE},
       extra_scope=f"repository:{BASE_IMAGE}:pull"),
    Op("upload-patch", "PATCH", lambda s: s.upload, 202, "push", body=CHUNK,
       headers={"Content-Type": "application/octet-stream"}),
    Op("upload-status", "GET", lambda s: s.upload, 204, "push"),
    Op("upload-finish", "PUT", lambda s: s.upload, 201, "push", body=CHUNK,
       params={"digest": digest(CHUNK)}),
    Op("upload-cancel", "DELETE", lambda s: s.upload, 204, "push"),
    Op("manifest-put", "PUT", lambda s: f"/v2/{IMAGE}/manifests/2.0", 201, "push",
       body=NEW.manifest, headers={"Content-Type": OCI_MANIFEST}),
    Op("manifest-delete", "DELETE", lambda s: f"/v2/{IMAGE}/manifests/{SEED.digest}", 202,
       "delete"),
    Op("blob-delete", "DELETE", lambda s: f"/v2/{IMAGE}/blobs/{SEED.layer_digest}", 202,
       "delete"),
]

SCOPES = {"base": [], "catalog": [CATALOG], "pull": [PULL], "push": [PUSH],
          "delete": [DELETE]}
CHALLENGE = {"base": None, "catalog": CATALOG, "pull": PULL,
             "push": f"repository:{IMAGE}:pull,push", "delete": DELETE}

EVERYONE = {"admin", "releng", "maint", "other", "reviewer", "robot", "robot-m", "anonymous"}
ALLOWED = {
    "base": EVERYONE,
    "catalog": EVERYONE,
    "pull": EVERYONE,
    "push": {"admin", "releng", "maint", "robot", "robot-m"},
    "delete": {"admin", "releng", "robot"},
}
ROLES = ["anonymous", "admin", "releng", "maint", "other", "reviewer", "robot", "robot-m"]


def _cases() -> list[tuple[Op, str, str]]:
    cases = []
    for op in OPS:
        for role in ROLES:
            modes = ["none", "bearer"] if role == "anonymous" else ["bearer", "basic"]
            cases += [(op, role, mode) for mode in modes]
    return cases


@pytest.fixture(scope="module")
def seeded_cache(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return {"dir": tmp_path_factory.mktemp("seeded") / "data"}


@pytest.fixture
async def seeded_env(make_env: EnvFactory, seeded_cache: dict[str, Any]
                     ) -> tuple[AuthEnv, Seeded]:
    """An env whose data dir is a copy of one seeded once per module (seeding is the slow
    part)."""
    if "seeded" not in seeded_cache:
        env = await make_env()
        seeded_cache["seeded"] = await seed(env)
        env.engine.dispose()  # the last connection closing checkpoints the WAL into the file
        shutil.copytree(env.data_dir, seeded_cache["dir"])
    return await make_env(data_from=seeded_cache["dir"]), seeded_cache["seeded"]


@pytest.mark.parametrize(("op", "role", "mode"), _cases(),
                         ids=lambda v: v.name if isinstance(v, Op) else v)
async def test_route_role(seeded_env: tuple[AuthEnv, Seeded], op: Op, role: str,
                          mode: str) -> None:
    env, seeded = seeded_env
    account = None if role == "anonymous" else role
    scopes = [*SCOPES[op.need], *([op.extra_scope] if op.extra_scope else [])]
    headers = await env.auth_headers(account, mode, *scopes)
    resp = await env.client.request(op.method, op.path(seeded), params=op.params,
                                    data=op.body, headers={**(op.headers or {}), **headers})
    allowed = role in ALLOWED[op.need] and not (mode == "none" and op.need == "base")
    if allowed:
        assert resp.status == op.ok, (resp.status, await resp.text())
        return
    if mode == "none":
        await assert_refused(resp, 401, "UNAUTHORIZED")
        challenge = parse_challenge(resp.headers["WWW-Authenticate"])
        assert challenge["realm"].endswith("/auth/token")
        assert challenge["service"] == "strata"
        expected = " ".join(s for s in (CHALLENGE[op.need], op.extra_scope) if s)
        assert challenge.get("scope") == (expected or None)
    elif mode == "bearer":  # RFC 6750: 403 with the scope to fetch
        await assert_refused(resp, 403, "DENIED")
        challenge = parse_challenge(resp.headers["WWW-Authenticate"])
        assert challenge["error"] == "insufficient_scope"
    else:
        await assert_refused(resp, 403, "DENIED")
        assert "WWW-Authenticate" not in resp.headers


async def test_cross_repository_mount_needs_pull_on_the_source(env: AuthEnv) -> None:
    """The challenge for a mount names both repositories."""
    await seed(env)
    resp = await env.client.post(f"/v2/{IMAGE}/blobs/uploads/",
                                 params={"mount": digest(MOUNTABLE), "from": BASE_IMAGE})
    await assert_refused(resp, 401, "UNAUTHORIZED")
    challenge = parse_challenge(resp.headers["WWW-Authenticate"])
    assert challenge["scope"] == f"repository:{IMAGE}:pull,push repository:{BASE_IMAGE}:pull"
    # A token with push on the target only is not enough, with pull on the source it is.
    token = await env.token("maint", f"repository:{IMAGE}:pull,push")
    resp = await env.client.post(f"/v2/{IMAGE}/blobs/uploads/",
                                 params={"mount": digest(MOUNTABLE), "from": BASE_IMAGE},
                                 headers={"Authorization": f"Bearer {token}"})
    await assert_refused(resp, 403, "DENIED")
    assert parse_challenge(resp.headers["WWW-Authenticate"]) == {
        **challenge, "error": "insufficient_scope"}
    token = await env.token("maint", f"repository:{IMAGE}:pull,push",
                            f"repository:{BASE_IMAGE}:pull")
    resp = await env.client.post(f"/v2/{IMAGE}/blobs/uploads/",
                                 params={"mount": digest(MOUNTABLE), "from": BASE_IMAGE},
                                 headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 201, await resp.text()


async def test_unknown_route_and_method_need_credentials_only(env: AuthEnv) -> None:
    resp = await env.client.get(f"/v2/{IMAGE}/nothing-here")
    await assert_refused(resp, 401, "UNAUTHORIZED")
    token = await env.token(None)
    resp = await env.client.get(f"/v2/{IMAGE}/nothing-here",
                                headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 404
    resp = await env.client.post(f"/v2/{IMAGE}/tags/list",
                                 headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 405
