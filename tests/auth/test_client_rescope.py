"""RegistryClient against a server with token authentication on: a token it holds for a
narrower scope (pull-only, from a first HEAD of a private repository) is replaced, once, by a
token for the scope the server's ``insufficient_scope`` challenge names; an account that may
not push still gets the 403, after one retry."""

from __future__ import annotations

import warnings

import aiohttp
import pytest

from strata.client.registry import ClientError, RegistryClient

from .conftest import IMAGE, AuthEnv, EnvFactory
from .helpers import make_image


def client_for(env: AuthEnv, account: str) -> RegistryClient:
    with warnings.catch_warnings():  # the BasicAuth RegistryClient sends to the token endpoint
        warnings.simplefilter("ignore", DeprecationWarning)
        basic = aiohttp.BasicAuth(account, env.secrets[account])
    return RegistryClient(str(env.client.make_url("")), env.client.session, auth=basic)


def private(_name: str) -> bool:
    return False


async def test_a_pull_token_from_a_first_head_is_widened_for_a_push(
        make_env: EnvFactory) -> None:
    env = await make_env(public=private)
    registry = client_for(env, "maint")  # maintainer of f25/cockpit: pull and push
    image = make_image("rescope")
    # the first request: a HEAD, answered 401; the client takes a token for pull only
    assert await registry.head_manifest(IMAGE, "latest") is None
    assert await registry.blob_exists(IMAGE, image.layer_digest) is None
    # the push is refused with insufficient_scope for that token, and succeeds with a new one
    digest = await registry.push_image(IMAGE, "latest", [image.layer], image.config)
    assert await registry.head_manifest(IMAGE, "latest") == digest
    got = await registry.get_manifest(IMAGE, "latest")
    assert got.digest == digest
    # a manifest PUT (a bytes body) as the first write after a pull-only token: retried too
    again = client_for(env, "maint")
    assert await again.head_manifest(IMAGE, "latest") == digest
    assert await again.put_manifest(IMAGE, "second", got.content, got.media_type) == digest
    assert await again.head_manifest(IMAGE, "second") == digest


async def test_an_account_without_push_still_gets_the_refusal(make_env: EnvFactory) -> None:
    env = await make_env(public=private)
    owner = client_for(env, "maint")
    image = make_image("refused")
    await owner.push_image(IMAGE, "latest", [image.layer], image.config)
    reviewer = client_for(env, "reviewer")  # may pull everything, push nothing
    assert await reviewer.head_manifest(IMAGE, "latest") is not None
    with pytest.raises(ClientError) as refused:
        await reviewer.push_blob(IMAGE, b"not allowed")
    assert refused.value.status == 403 and refused.value.code == "DENIED"
