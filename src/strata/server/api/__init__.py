"""The JSON API of the release engine, ``/api/v1/...`` (see :mod:`strata.server.api.setup`)."""

from strata.server.api.context import ReleaseApi
from strata.server.api.setup import add_release_api, release_api_from_env

__all__ = ["ReleaseApi", "add_release_api", "release_api_from_env"]
