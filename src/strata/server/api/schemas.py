"""JSON Schemas (2020-12) of what /api/v1 answers: the ``components/schemas`` of the OpenAPI
document (:mod:`strata.server.api.spec`), referenced by the operations' declarations.

They describe the ``to_json`` of the values the handlers answer with (:mod:`strata.release.model`,
the review and build stores); the property test (``tests/api_v1/test_openapi_fuzz.py``) checks
every answer of a live server against them. Request bodies are declared beside their routes
(:mod:`strata.server.api.bodies`), where they also validate.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]


def ref(name: str) -> Schema:
    """A reference to a component schema by name."""
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def obj(required: dict[str, Schema], optional: dict[str, Schema] | None = None) -> Schema:
    """An object with these properties (``required``: always there); others allowed."""
    return {"type": "object", "required": sorted(required),
            "properties": {**required, **(optional or {})}}


def list_of(key: str, item: Schema, extra: dict[str, Schema] | None = None) -> Schema:
    """``{key: [item, ...]}``: the shape of every list answer."""
    return obj({key: {"type": "array", "items": item}, **(extra or {})})


STR: Schema = {"type": "string"}
OPT_STR: Schema = {"type": ["string", "null"]}
INT: Schema = {"type": "integer"}
BOOL: Schema = {"type": "boolean"}
TIME: Schema = {"type": ["string", "null"], "description": "ISO 8601, UTC"}
STRINGS: Schema = {"type": "array", "items": STR}
ANY_OBJECT: Schema = {"type": "object"}

COMPONENTS: dict[str, Schema] = {
    "Error": obj({"code": STR, "message": STR}, {"detail": {}}),
    "Errors": obj({"errors": {"type": "array", "items": ref("Error"), "minItems": 1}}),
    "Namespace": obj({"name": STR, "dist_tag": STR, "interval_days": INT, "anchor": STR,
                      "base_image": OPT_STR, "created_at": TIME,
                      "rebuild_days_before": {"type": ["integer", "null"]}}),
    "Image": obj({"repository": STR, "namespace": STR, "name": STR,
                  "status": {"enum": ["in-review", "active", "retired"]},
                  "maintainers": STRINGS,
                  "source": obj({"url": OPT_STR, "branch": OPT_STR}),
                  "summary": OPT_STR, "created_at": TIME}),
    "Stream": obj({"repository": STR, "version": STR, "eol": BOOL, "eol_at": TIME,
                   "eol_by": OPT_STR}),
    "TagInfo": obj({"tag": STR, "stream": {}, "digest": OPT_STR, "nvr": OPT_STR}),
    "ImageDetails": {"allOf": [ref("Image"), obj({
        "streams": {"type": "array", "items": ref("Stream")},
        "tags": {"type": "array", "items": ref("TagInfo")}})]},
    "StaleImage": obj({"repository": STR, "stale": BOOL}),
    "Build": obj({"repository": STR, "digest": STR, "nvr": STR, "name": STR, "version": STR,
                  "release": STR, "tag": STR,
                  "status": {"enum": ["candidate", "released", "withdrawn"]},
                  "advisories": STRINGS, "reason": OPT_STR, "release_name": OPT_STR,
                  "created_at": TIME, "created_by": STR,
                  "withdrawn": nullable(obj({"at": TIME, "by": OPT_STR, "reason": OPT_STR}))}),
    "Candidate": {"allOf": [ref("Build"), obj({"warnings": {"type": "array"},
                                               "inputs": nullable(ANY_OBJECT)})]},
    "TagEvent": obj({"repository": STR, "tag": STR, "old_digest": OPT_STR,
                     "new_digest": OPT_STR, "actor": STR, "release": OPT_STR,
                     "reason": OPT_STR, "at": TIME, "at_epoch": {"type": "number"}}),
    "TagHistory": obj({"repository": STR, "tag": OPT_STR,
                       "events": {"type": "array", "items": ref("TagEvent")}},
                      {"at": {"type": "number"}, "digest": OPT_STR, "nvr": OPT_STR,
                       "since": nullable(ref("TagEvent"))}),
    "Release": obj({"name": STR, "kind": STR, "namespace": STR,
                    "scheduled_for": OPT_STR, "status": STR, "created_at": TIME,
                    "published_at": TIME, "actor": OPT_STR, "advisories": STRINGS,
                    "reason": OPT_STR}),
    "ReleaseDetails": {"allOf": [ref("Release"), obj({
        "notes": nullable(ANY_OBJECT), "notes_markdown": OPT_STR,
        "builds": {"type": "array", "items": ref("Build")}})]},
    "Plan": obj({"namespace": obj({"name": STR, "dist_tag": STR}),
                 "last_published": OPT_STR,
                 "next": {"type": "array", "items": obj({"date": STR, "name": STR,
                                                         "due": BOOL})},
                 "release": {}, "waiting": {"type": "array", "items": ANY_OBJECT},
                 "images": {"type": "array", "items": obj({
                     "repository": STR, "builds": {"type": "array", "items": ANY_OBJECT},
                     "problem": {}, "moves": {"type": "array", "items": obj({
                         "tag": STR, "stream": STR, "old_digest": OPT_STR,
                         "new_digest": STR, "old_nvr": OPT_STR, "new_nvr": STR})},
                     "skips": {"type": "array", "items": ANY_OBJECT},
                     "left_out": {"type": "array", "items": ANY_OBJECT}})},
                 "rebuilds": {"type": "array", "items": ANY_OBJECT}}),
    "Webhook": obj({"id": INT, "url": STR, "events": STRINGS, "active": BOOL,
                    "created_at": TIME}),
    "Delivery": obj({"id": INT, "webhook_id": INT, "event": STR, "status": STR,
                     "attempts": INT, "next_attempt_at": TIME, "last_error": OPT_STR,
                     "delivered_at": TIME}),
    "Review": obj({"id": INT, "repository": STR, "namespace": STR, "submitter": STR,
                   "source": obj({"url": OPT_STR, "branch": OPT_STR}),
                   "status": {"enum": ["open", "approved", "rejected"]},
                   "checks": {"type": "array", "items": ANY_OBJECT},
                   "created_at": {"type": "number"},
                   "decided_at": {"type": ["number", "null"]},
                   "decided_by": OPT_STR},
                  {"comments": {"type": "array", "items": ANY_OBJECT}}),
    "BuildJob": obj({"id": INT, "repository": STR, "kind": STR, "reason": OPT_STR,
                     "state": STR, "rebuild": BOOL, "attempts": INT, "requested_by": STR,
                     "created_at": {"type": "number"},
                     "result_digest": OPT_STR, "result_nvr": OPT_STR, "error": OPT_STR,
                     "log_size": INT}),
    "BuildLog": obj({"id": INT, "log": STR, "offset": INT, "state": STR}),
    "ImageEvents": obj({"repository": STR, "events": {"type": "array", "items": ANY_OBJECT}}),
    "Streams": obj({"repository": STR, "streams": {"type": "array", "items": ref("Stream")}}),
    "Maintainers": ANY_OBJECT,
    "ReleaseKeys": obj({"namespace": STR, "signed_identity": STR, "registry": STR,
                        "keys": {"type": "array", "items": ANY_OBJECT}}),
    "OpenApi": obj({"openapi": STR, "info": ANY_OBJECT, "paths": ANY_OBJECT}),
}
