"""/api/v1/images/{ns}/{name}: changing an image's source and maintainers (issue 14).

* ``PATCH /api/v1/images/{ns}/{name}`` ``{"source_url", "source_branch", "summary",
  "status"}`` (any of them): releng/admin change everything, a maintainer of the image its
  source and summary (``strata image set``). A source URL must pass ``--source-allow``.
* ``POST /api/v1/images/{ns}/{name}/maintainers`` ``{"add": USER}`` or ``{"remove": USER}``:
  releng/admin (``strata image maintainers``); the account gets (loses) the maintainer grant.
* ``GET /api/v1/images/{ns}/{name}/events``: what happened to the image outside its tags
  (registrations, forced registrations with their reason, approvals, changes).
"""

from __future__ import annotations

from aiohttp import web

from strata.server.api import parse
from strata.server.api.auth import Need, actor, authorize, is_releng
from strata.server.api.context import sources_of
from strata.server.api.namespaces import image_repository
from strata.server.http import json_response


async def update_image(request: web.Request) -> web.Response:
    repository = image_repository(request)
    authorize(request, Need.MAINTAINER, repository)
    data = await parse.json_body(request)
    image = await sources_of(request).set_image(repository, data, actor=actor(request),
                                                releng=is_releng(request))
    return json_response(image.to_json())


async def maintainers(request: web.Request) -> web.Response:
    repository = image_repository(request)
    authorize(request, Need.RELENG)
    data = await parse.json_body(request)
    out = await sources_of(request).maintainers(
        repository, add=parse.text(data, "add"), remove=parse.text(data, "remove"),
        actor=actor(request))
    return json_response(out)


async def events(request: web.Request) -> web.Response:
    authorize(request, Need.READER)
    repository = image_repository(request)
    return json_response({"repository": repository,
                          "events": await sources_of(request).events(repository)})
