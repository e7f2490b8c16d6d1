"""The release engine's /api/v1 operations, declared (:class:`~.spec.Operation`): the route
table of :mod:`strata.server.api.setup`, and what ``/api/v1/openapi.json`` says of them.

A new route is added here (or in its own module's table, like :mod:`.builds`) with its
summary, the role it needs, its query parameters, its body schema (:mod:`.bodies`) and its
answer (:mod:`.schemas`); ``tests/api_v1/test_openapi.py`` fails for a route without one.
"""

from __future__ import annotations

from strata.release.model import BuildStatus
from strata.review.service import STATUSES as REVIEW_STATUSES
from strata.server.api import (
    bodies,
    candidates,
    images,
    keys,
    namespaces,
    parse,
    releases,
    reviews,
    streams,
    webhooks,
)
from strata.server.api.auth import Need
from strata.server.api.schemas import list_of, ref
from strata.server.api.spec import Operation, Param

_IMAGE = "/api/v1/images/{ns}/{name}"
_NS = Param("namespace", {"type": "string", "maxLength": 255}, "only this namespace")
_REPO = Param("repository", {"type": "string", "maxLength": 255}, "only this repository")
_AT = Param("at", {"type": "string", "maxLength": 64},
            "a time (ISO 8601, UTC unless it says otherwise, or Unix seconds): what the tag "
            "pointed to then")
_IMAGE_PATH = {"ns": {"type": "string", "minLength": 1,
                      "description": "the namespace; _ for a root repository"},
               "name": {"type": "string", "minLength": 1}}
_REVIEW_ID = {"id": {"type": "string", "pattern": "^[0-9]{1,12}$"}}

NAMESPACES = "namespaces"
IMAGES = "images"
REVIEWS = "reviews"
RELEASES = "releases"
WEBHOOKS = "webhooks"

OPERATIONS: tuple[Operation, ...] = (
    # -- namespaces ----------------------------------------------------------------------------
    Operation("GET", "/api/v1/namespaces", namespaces.list_namespaces, "list namespaces",
              NAMESPACES, response=list_of("namespaces", ref("Namespace")), paginated=True),
    Operation("POST", "/api/v1/namespaces", namespaces.add_namespace, "add a namespace",
              NAMESPACES, Need.RELENG, body=bodies.NAMESPACE_ADD, response=ref("Namespace"),
              status=201),
    Operation("GET", "/api/v1/namespaces/{ns}", namespaces.show_namespace, "one namespace",
              NAMESPACES, response=ref("Namespace")),
    Operation("PATCH", "/api/v1/namespaces/{ns}", namespaces.update_namespace,
              "change a namespace's base image or pre-release rebuild days", NAMESPACES,
              Need.RELENG, body=bodies.NAMESPACE_CHANGE, response=ref("Namespace")),
    Operation("GET", "/api/v1/namespaces/{ns}/keys", keys.list_keys,
              "a namespace's release keys (current first, then retired)", NAMESPACES,
              response=ref("ReleaseKeys")),
    Operation("POST", "/api/v1/namespaces/{ns}/keys/rotate", keys.rotate,
              "a new current release key (the old one stays published)", NAMESPACES,
              Need.RELENG, response=ref("ReleaseKeys"), status=201),
    # -- images --------------------------------------------------------------------------------
    Operation("GET", "/api/v1/images", namespaces.list_images,
              "list images (stale: the active images whose base moved since their build)",
              IMAGES, query=(_NS, Param("stale", {"type": "boolean", "default": False},
                                        "only images whose base stream moved")),
              response=list_of("images", {"anyOf": [ref("Image"), ref("StaleImage")]}),
              paginated=True),
    Operation("POST", "/api/v1/images", namespaces.add_image,
              "register an image directly, without a review", IMAGES, Need.RELENG,
              body=bodies.IMAGE_ADD, response=ref("Image"), status=201),
    Operation("GET", _IMAGE, namespaces.show_image, "an image with its streams and tags",
              IMAGES, path_params=_IMAGE_PATH, response=ref("ImageDetails")),
    Operation("PATCH", _IMAGE, images.update_image,
              "change an image's source, summary or status", IMAGES, Need.MAINTAINER,
              path_params=_IMAGE_PATH, body=bodies.IMAGE_CHANGE, response=ref("Image")),
    Operation("POST", _IMAGE + "/maintainers", images.maintainers,
              "add or remove a maintainer of an image", IMAGES, Need.RELENG,
              path_params=_IMAGE_PATH, body=bodies.MAINTAINERS, response=ref("Maintainers")),
    Operation("GET", _IMAGE + "/events", images.events,
              "what happened to an image outside its tags", IMAGES,
              path_params=_IMAGE_PATH, response=ref("ImageEvents")),
    Operation("GET", _IMAGE + "/streams", streams.list_streams,
              "an image's version streams", IMAGES, path_params=_IMAGE_PATH,
              response=ref("Streams"), paginated=True),
    Operation("POST", _IMAGE + "/streams/{version}/eol", streams.end_stream,
              "end a version stream (its tag stays, frozen)", IMAGES, Need.RELENG,
              path_params=_IMAGE_PATH, response=ref("Stream")),
    Operation("GET", _IMAGE + "/history", streams.history,
              "tag events of an image", IMAGES, path_params=_IMAGE_PATH,
              query=(Param("tag", {"type": "string", "maxLength": 128}, "only this tag"),
                     _AT),
              response=ref("TagHistory"), paginated=True),
    Operation("GET", _IMAGE + "/tags/{tag}/history", streams.tag_history,
              "one tag's events; with at: what it pointed to then", IMAGES,
              path_params=_IMAGE_PATH, query=(_AT,), response=ref("TagHistory"),
              paginated=True),
    # -- reviews -------------------------------------------------------------------------------
    Operation("POST", "/api/v1/reviews", reviews.submit,
              "submit a new image for review (automated checks run at once)", REVIEWS,
              Need.ACCOUNT, body=bodies.REVIEW_SUBMIT, response=ref("Review"), status=201),
    Operation("GET", "/api/v1/reviews", reviews.list_reviews, "list review requests",
              REVIEWS, query=(Param("status", {"enum": list(REVIEW_STATUSES)}), _NS),
              response=list_of("reviews", ref("Review")), paginated=True),
    Operation("GET", "/api/v1/reviews/{id}", reviews.show,
              "one review request with its checks and comments", REVIEWS,
              path_params=_REVIEW_ID, response=ref("Review")),
    Operation("POST", "/api/v1/reviews/{id}/comment", reviews.comment,
              "comment on a review request", REVIEWS, Need.ACCOUNT,
              path_params=_REVIEW_ID, body=bodies.REVIEW_COMMENT, response=ref("Review")),
    Operation("POST", "/api/v1/reviews/{id}/approve", reviews.approve,
              "approve a review request: the image becomes active", REVIEWS, Need.REVIEWER,
              path_params=_REVIEW_ID, body=bodies.REVIEW_COMMENT, response=ref("Review")),
    Operation("POST", "/api/v1/reviews/{id}/reject", reviews.reject,
              "reject a review request", REVIEWS, Need.REVIEWER,
              path_params=_REVIEW_ID, body=bodies.REVIEW_COMMENT, response=ref("Review")),
    # -- candidates and releases ---------------------------------------------------------------
    Operation("GET", "/api/v1/candidates", candidates.list_candidates,
              "builds registered for release", RELEASES,
              query=(_NS, _REPO, Param("status", {"enum": list(candidates.STATUSES),
                                                  "default": BuildStatus.CANDIDATE.value})),
              response=list_of("candidates", ref("Build")), paginated=True),
    Operation("POST", "/api/v1/candidates", candidates.add_candidate,
              "register a pushed build for the next release", RELEASES, Need.MAINTAINER,
              body=bodies.CANDIDATE_ADD, response=ref("Candidate"), status=201),
    Operation("POST", "/api/v1/candidates/withdraw", candidates.withdraw_candidate,
              "take a pending build out of the next release", RELEASES, Need.MAINTAINER,
              body=bodies.CANDIDATE_WITHDRAW, response=ref("Build")),
    Operation("GET", "/api/v1/plan", releases.plan,
              "the next release dates, tag moves and pending rebuilds", RELEASES,
              query=(_NS, Param("count", {"type": "integer", "minimum": 1, "maximum": 100,
                                          "default": 3}, "how many releases ahead")),
              response=list_of("plans", ref("Plan"))),
    Operation("POST", "/api/v1/releases/publish", releases.publish,
              "publish a scheduled release now", RELEASES, Need.RELENG,
              body=bodies.PUBLISH, response=ref("ReleaseDetails"), status=201),
    Operation("POST", "/api/v1/releases/oob", releases.oob, "an out-of-band release",
              RELEASES, Need.RELENG, body=bodies.OOB, response=ref("ReleaseDetails"),
              status=201),
    Operation("GET", "/api/v1/releases", releases.list_releases, "list releases", RELEASES,
              query=(_NS,), response=list_of("releases", ref("Release")), paginated=True),
    Operation("GET", "/api/v1/releases/{name}/notes.md", releases.release_notes_markdown,
              "a release's notes in Markdown", RELEASES, response={"type": "string"},
              content_type="text/markdown"),
    Operation("GET", "/api/v1/releases/{name}/notes.json", releases.release_notes_json,
              "a release's notes as data", RELEASES,
              response={"type": ["object", "null"]}),
    Operation("GET", "/api/v1/releases/{name}", releases.show_release,
              "one release (a date names that day's release) with notes and builds",
              RELEASES, response=ref("ReleaseDetails")),
    Operation("POST", "/api/v1/rollback", releases.rollback,
              "move a floating tag back (recorded with its reason)", RELEASES, Need.RELENG,
              body=bodies.ROLLBACK, response=ref("TagEvent")),
    # -- webhooks ------------------------------------------------------------------------------
    Operation("GET", "/api/v1/webhooks", webhooks.list_webhooks, "list webhooks", WEBHOOKS,
              Need.RELENG, response=list_of("webhooks", ref("Webhook")), paginated=True),
    Operation("POST", "/api/v1/webhooks", webhooks.add_webhook,
              "add a webhook for release events", WEBHOOKS, Need.ADMIN,
              body=bodies.WEBHOOK_ADD, response=ref("Webhook"), status=201),
    Operation("GET", "/api/v1/webhooks/deliveries", webhooks.deliveries,
              "webhook deliveries and how they went", WEBHOOKS, Need.RELENG,
              query=(Param("webhook", {"type": "integer", "minimum": 1,
                                       "maximum": parse.MAX_ID}, "only this webhook's"),),
              response=list_of("deliveries", ref("Delivery")), paginated=True),
)
