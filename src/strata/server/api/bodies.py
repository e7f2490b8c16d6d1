"""JSON Schemas of the /api/v1 request bodies: declared with each operation
(:mod:`strata.server.api.operations`), they are both the OpenAPI document's ``requestBody``
and the check :func:`strata.server.api.parse.json_body` makes (400 INVALID naming the field).

They say the shape (which fields, of which JSON type, bounded); the use-cases check the rest
(a repository name's grammar, an allowed source URL, whether an image exists). A text field
may be ``null`` or ``""`` for "not given", as :func:`strata.server.api.parse.text` reads it;
an integer field may be a JSON integer or its decimal digits (:func:`parse.integer`).
"""

from __future__ import annotations

from strata.catalog.search import MAX_HELP
from strata.release.rebuild import MAX_PACKAGES
from strata.release.rebuilds import MAX_DAYS_BEFORE
from strata.release.schedule import MAX_INTERVAL_DAYS
from strata.server.api.schemas import Schema

TEXT_MAX = 4096


def text(max_length: int = TEXT_MAX) -> Schema:
    return {"type": ["string", "null"], "maxLength": max_length}


def required_text(max_length: int = TEXT_MAX) -> Schema:
    return {"type": "string", "minLength": 1, "maxLength": max_length}


def integer(low: int, high: int, *, null: bool = False) -> Schema:
    choices: list[Schema] = [{"type": "integer", "minimum": low, "maximum": high},
                             {"type": "string", "pattern": "^-?[0-9]{1,12}$"}]
    if null:
        choices.append({"type": "null"})
    return {"anyOf": choices}


def texts(max_items: int = 1000) -> Schema:
    return {"type": ["array", "null"], "items": {"type": "string", "maxLength": TEXT_MAX},
            "maxItems": max_items}


def body(required: dict[str, Schema], optional: dict[str, Schema] | None = None, *,
         closed: bool = False) -> Schema:
    """An object body; ``closed``: no other fields (the route refuses them)."""
    out: Schema = {"type": "object", "properties": {**required, **(optional or {})}}
    if required:
        out["required"] = sorted(required)
    if closed:
        out["additionalProperties"] = False
    return out


BOOL: Schema = {"type": "boolean"}
STATUS: Schema = {"enum": ["in-review", "active", "retired", "", None]}

NAMESPACE_ADD = body({"name": required_text(255)}, {
    "dist_tag": text(255), "interval_days": integer(1, MAX_INTERVAL_DAYS),
    "anchor": text(10), "base_image": text(255),
    "rebuild_days_before": integer(0, MAX_DAYS_BEFORE, null=True)})
NAMESPACE_CHANGE = body({}, {"base_image": text(255),
                             "rebuild_days_before": integer(0, MAX_DAYS_BEFORE, null=True)},
                        closed=True)
IMAGE_ADD = body({"repository": required_text(255)}, {
    "maintainers": texts(), "source_url": text(1024), "source_branch": text(255),
    "status": STATUS, "namespace": text(255), "summary": text(4000), "reason": text()})
IMAGE_CHANGE = body({}, {"source_url": text(1024), "source_branch": text(255),
                         "summary": text(4000), "status": STATUS}, closed=True)
MAINTAINERS = body({}, {"add": text(255), "remove": text(255)})
REVIEW_SUBMIT = body({"repository": required_text(255), "git": required_text(1024)},
                     {"branch": text(255)})
REVIEW_COMMENT = body({}, {"comment": text()})
_INPUT_TEXT = text(1024)
CANDIDATE_ADD = body({"reference": required_text(512)}, {
    "advisories": texts(), "reason": text(),
    "source": {"type": ["object", "null"],
               "properties": {"url": _INPUT_TEXT, "commit": _INPUT_TEXT}},
    "base": {"type": ["object", "null"],
             "properties": {"repository": _INPUT_TEXT, "tag": _INPUT_TEXT,
                            "digest": _INPUT_TEXT}},
    "packages": {"type": ["array", "null"], "maxItems": MAX_PACKAGES, "items": {
        "type": "object", "required": ["name"], "properties": {
            "name": _INPUT_TEXT, "version": _INPUT_TEXT, "arch": _INPUT_TEXT}}},
    "record": {"type": ["string", "null"], "maxLength": 200},
    "if_changed": {"type": ["boolean", "null"]}, "force": BOOL,
    "help": text(MAX_HELP)})
CANDIDATE_WITHDRAW = body({"reference": required_text(512), "reason": required_text()})
PUBLISH = body({}, {"name": text(255), "namespace": text(255)})
OOB = body({"references": {"type": "array", "items": {"type": "string", "maxLength": 512},
                           "minItems": 1, "maxItems": 1000}},
           {"advisories": texts(), "reason": text(), "name": text(255)})
ROLLBACK = body({"reference": required_text(512), "to": required_text(512)},
                {"reason": text()})
WEBHOOK_ADD = body({"url": required_text(2048)}, {"events": texts(100), "secret": text(1024)})
BUILD_START = body({"repository": required_text(255)}, {"rebuild": BOOL, "reason": text()})
