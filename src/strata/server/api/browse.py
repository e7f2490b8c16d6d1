"""/api/v1/browse: the catalog pages' content as JSON (what ``/``, ``/{ns}`` and ``/{ns}/{name}``
show), from the same read model (:mod:`strata.catalog.views`).

Readable by anyone, but each caller sees only what it may pull (anonymous callers what the
public registry serves them; an unknown and a hidden image are the same 404).
``GET /api/v1/browse/images/{ns}/{name}`` takes ``_`` as ``{ns}`` for a root repository."""

from __future__ import annotations

from aiohttp import web

from strata.oci.names import RepositoryName
from strata.release.errors import invalid
from strata.server.api.auth import Need, authorize
from strata.server.api.namespaces import image_repository
from strata.server.api.schemas import BOOL, INT, OPT_STR, STR, Schema, nullable, obj
from strata.server.api.spec import Operation, Param
from strata.server.http import json_response
from strata.server.pages.context import PAGES
from strata.server.pages.visibility import for_principal
from strata.server.urls import public_url


async def home(request: web.Request) -> web.Response:
    authorize(request, Need.READER)
    view = await request.app[PAGES].catalog.home(for_principal(request))
    return json_response(view.to_json())


async def namespace(request: web.Request) -> web.Response:
    authorize(request, Need.READER)
    last = request.query.get("last") or None  # more_after of the previous page
    if last is not None and not RepositoryName.is_valid(last):
        raise invalid("last must be a repository name (more_after of the previous page)")
    view = await request.app[PAGES].catalog.namespace(request.match_info["ns"],
                                                      for_principal(request), after=last)
    return json_response(view.to_json())


async def image(request: web.Request) -> web.Response:
    authorize(request, Need.READER)
    url = public_url(request)
    view = await request.app[PAGES].catalog.image(
        image_repository(request), host=url.netloc, insecure=url.scheme == "http",
        visible=for_principal(request))
    return json_response(view.to_json())


async def release(request: web.Request) -> web.Response:
    authorize(request, Need.READER)
    view = await request.app[PAGES].catalog.release(request.match_info["release"],
                                                    for_principal(request))
    return json_response(view.to_json())


_VIEW = {"type": "object", "description": "the page's read model (catalog/views.py)"}
_SIGNATURE = obj({"signed": BOOL, "key_id": OPT_STR, "key_status": OPT_STR,
                  "identity": OPT_STR})
_DOCUMENT = obj({"manifest": STR, "artifact_type": STR, "media_type": STR, "digest": STR,
                 "size": INT, "url": STR, "created": OPT_STR, "signature": _SIGNATURE})
TRUST: Schema = {**obj({"digest": STR, "namespace": STR, "signature": _SIGNATURE,
                        "sbom": {"type": "array", "items": _DOCUMENT},
                        "provenance": {"type": "array", "items": _DOCUMENT},
                        "public_key_url": STR}),
                 "description": "an image digest's release signature (the namespace key that "
                 "verifies it), its SBOM and provenance referrers (url: the document's blob "
                 "under /v2/, pulled as any blob) and the namespace's public key URL"}
_NAMESPACE_TRUST = obj({"public_key_url": STR, "client_config": STR,
                        "keys": {"type": "array", "items": obj({
                            "key_id": STR, "status": STR, "created_at": OPT_STR,
                            "retired_at": OPT_STR})}})
_IMAGE_VIEW = {**_VIEW, **obj({"trust": nullable(TRUST)})}
_NAMESPACE_VIEW = {**_VIEW, **obj({"trust": _NAMESPACE_TRUST})}
_RELEASE_VIEW = {**_VIEW, **obj({"name": STR, "namespace": STR, "notes_html": OPT_STR,
                                  "builds": {"type": "array", "items": obj(
                                      {"trust": nullable(TRUST)})}})}
OPERATIONS = (
    Operation("GET", "/api/v1/browse/home", home, "what the home page shows", "browse",
              response=_VIEW),
    Operation("GET", "/api/v1/browse/namespaces/{ns}", namespace,
              "what a namespace's page shows (100 images a page)", "browse",
              response=_NAMESPACE_VIEW,
              query=(Param("last", {"type": "string", "maxLength": 255},
                           "more_after of the previous page: the images after it"),)),
    Operation("GET", "/api/v1/browse/images/{ns}/{name}", image,
              "what an image's page shows (_ as ns for a root repository)", "browse",
              response=_IMAGE_VIEW),
    Operation("GET", "/api/v1/browse/releases/{release}", release,
              "what a release's page shows: its builds, each with its signature, SBOM and "
              "provenance (the first 100)", "browse", response=_RELEASE_VIEW),
)
