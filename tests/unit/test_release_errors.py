"""The release engine's errors: ReleaseError (not RegistryError) out of the use-cases, a
uniqueness race as CONFLICT, and one mapping to the catalogue's error body at the API edge."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from strata.errors import Code, RegistryError
from strata.meta.errors import Conflict
from strata.release.errors import CONCURRENT_CHANGE, ReleaseError, conflict, from_registry
from strata.release.inventory import write
from strata.server.api.errors import as_registry_error, mapping_errors


def test_release_error_is_not_a_registry_error() -> None:
    err = conflict("release f25-2025-06-16 is already published", {"release": "f25"})
    assert not isinstance(err, RegistryError)
    assert (err.code, err.message, err.detail) == (
        Code.CONFLICT, "release f25-2025-06-16 is already published", {"release": "f25"})


def test_a_registry_refusal_keeps_its_code() -> None:
    err = from_registry(RegistryError(Code.MANIFEST_UNKNOWN, {"reference": "sha256:00"}))
    assert (err.code, err.detail, err.message) == (
        Code.MANIFEST_UNKNOWN, {"reference": "sha256:00"}, Code.MANIFEST_UNKNOWN.message)


class _RacingStore:
    async def write(self, fn: Any) -> Any:
        raise Conflict("UNIQUE constraint failed: namespaces.name")


async def test_a_uniqueness_race_is_a_conflict() -> None:
    with pytest.raises(ReleaseError) as err:
        await write(_RacingStore(), lambda tx: None)  # type: ignore[arg-type]
    assert err.value.code is Code.CONFLICT
    assert err.value.message == CONCURRENT_CHANGE
    assert err.value.detail == "UNIQUE constraint failed: namespaces.name"


@pytest.mark.parametrize(("raised", "status", "code", "message"), [
    (ReleaseError(Code.NOT_FOUND, None, "unknown namespace 'f99'"), 404, "NOT_FOUND",
     "unknown namespace 'f99'"),
    (ReleaseError(Code.INVALID, {"namespaces": ["a", "b"]}, "say which"), 400, "INVALID",
     "say which"),
    (Conflict("UNIQUE constraint failed"), 409, "CONFLICT", CONCURRENT_CHANGE),
])
async def test_the_api_edge_maps_them_to_the_catalogue(raised: Exception, status: int,
                                                       code: str, message: str) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        raise raised

    with pytest.raises(RegistryError) as err:
        await mapping_errors(handler)(make_mocked_request("GET", "/api/v1/namespaces"))
    assert err.value.status == status
    [item] = json.loads(err.value.body())["errors"]
    assert (item["code"], item["message"]) == (code, message)
    assert as_registry_error(raised).code.name == code  # type: ignore[arg-type]
