"""Declared operations of the JSON API, and the OpenAPI 3.1 document made from them.

Every ``/api/v1`` route is an :class:`Operation`: method, path, handler, a summary, the role
it needs, its query parameters, the JSON Schema of its request body and the schema of its
answer. :func:`declare` adds the routes to the app and records the declarations;
``GET /api/v1/openapi.json`` (:func:`openapi_document`) renders the app's declarations, so the
document lists exactly the routes the server has. A route added without a declaration fails
``tests/api_v1/test_openapi.py``.

The same declarations validate: a declared query parameter is checked before the handler runs
(a syntax check, like the /v2/ path checks: ``INVALID`` 400 naming the parameter), and a
declared body is checked by :func:`strata.server.api.parse.json_body` once the handler has
authorised the request (permission before body). Handlers read checked query values with
:func:`strata.server.api.parse.query`.

List operations (``paginated=True``) take ``n`` (page size, 1..1000, default 100) and
``last`` (the cursor: the key of the last item of the previous page) and answer a
``Link: </api/v1/...?n=&last=>; rel="next"`` header while more items follow, as ``/v2/``
does (:mod:`strata.server.api.pages`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from aiohttp import web
from jsonschema import Draft202012Validator

from strata.release.errors import invalid
from strata.server.api import parse
from strata.server.api.auth import Need
from strata.server.api.errors import mapping_errors
from strata.server.api.schemas import COMPONENTS, Schema, ref
from strata.server.http import json_response

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

OPENAPI_PATH = "/api/v1/openapi.json"
MAX_QUERY_VALUE = 1024
#: Page sizes of list operations.
PAGE_DEFAULT = 100
PAGE_MAX = 1000


@dataclass(frozen=True)
class Param:
    """A query parameter (a string on the wire; ``schema`` says what it must be: an integer
    schema is parsed from decimal digits, a boolean from ``1|0|true|false``)."""

    name: str
    schema: Schema
    description: str = ""
    required: bool = False


@dataclass(frozen=True)
class Operation:
    """One route of the JSON API, with everything the document says about it.

    ``path_params``: schemas of path parameters (default: a string); ``body``: the JSON
    Schema of the request body (None: no body); ``response``: the schema of the answer
    with status ``status``; ``content_type``: of that answer; ``paginated``: a list
    operation (``n`` and ``last``, see :mod:`strata.server.api.pages`)."""

    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    need: Need = Need.READER
    query: tuple[Param, ...] = ()
    path_params: Mapping[str, Schema] = field(default_factory=dict)
    body: Schema | None = None
    response: Schema = field(default_factory=dict)
    status: int = 200
    content_type: str = "application/json"
    paginated: bool = False
    description: str = ""

    @property
    def all_query(self) -> tuple[Param, ...]:
        if not self.paginated:
            return self.query
        return (*self.query, *PAGE_PARAMS)

    @property
    def operation_id(self) -> str:
        return self.handler.__name__


PAGE_PARAMS = (
    Param("n", {"type": "integer", "minimum": 1, "maximum": PAGE_MAX,
                "default": PAGE_DEFAULT}, "page size"),
    Param("last", {"type": "string", "maxLength": 512},
          "the cursor: the key of the last item of the previous page (from the Link header)"),
)

OPERATIONS = web.AppKey("api_operations", list[Operation])


def declare(app: web.Application, operations: Iterable[Operation]) -> None:
    """Add the operations' routes to the app (release errors mapped, query and body checked
    against the declarations) and record them for the OpenAPI document."""
    if OPERATIONS not in app:
        app[OPERATIONS] = []
        declare(app, [_SELF])
    for op in operations:
        app[OPERATIONS].append(op)
        if op.method == "GET":  # and HEAD, as aiohttp's add_get does
            app.router.add_get(op.path, _checked(op))
        else:
            app.router.add_route(op.method, op.path, _checked(op))


def _checked(op: Operation) -> Handler:
    body = None if op.body is None else Draft202012Validator(op.body)
    params = {p.name: (p, Draft202012Validator(p.schema)) for p in op.all_query}
    handler = op.handler

    @functools.wraps(handler)
    async def checked(request: web.Request) -> web.StreamResponse:
        for name, text in request.match_info.items():
            parse.check_text(text, f"path parameter {name!r}")
        values: dict[str, Any] = {}
        for name, (param, validator) in params.items():
            values[name] = _query_value(request, param, validator)
        request[parse.QUERY] = values
        if body is not None:
            request[parse.BODY_SCHEMA] = body
        return await handler(request)
    return mapping_errors(checked)


def _query_value(request: web.Request, param: Param,
                 validator: Draft202012Validator) -> Any:
    text = request.query.get(param.name)
    if text is None or text == "":
        if param.required:
            raise invalid(f"missing query parameter {param.name!r}")
        return param.schema.get("default")
    if len(text) > MAX_QUERY_VALUE:
        raise invalid(f"query parameter {param.name!r} is longer than {MAX_QUERY_VALUE}")
    parse.check_text(text, f"query parameter {param.name!r}")
    value: Any = text
    kind = param.schema.get("type")
    if kind == "integer":
        digits = text[1:] if text.startswith("-") else text
        if not (digits.isascii() and digits.isdigit()) or len(digits) > parse.MAX_INTEGER_DIGITS:
            raise invalid(f"query parameter {param.name!r} must be an integer",
                          {param.name: text[:40]})
        value = int(text)
    elif kind == "boolean":
        if text not in ("1", "0", "true", "false"):
            raise invalid(f"query parameter {param.name!r} must be true or false",
                          {param.name: text[:40]})
        value = text in ("1", "true")
    error = next(iter(validator.iter_errors(value)), None)
    if error is not None:
        raise invalid(f"query parameter {param.name!r}: {error.message[:200]}",
                      {param.name: text[:40]})
    return value


# -- the document ------------------------------------------------------------------------------
_PATH_PARAM = re.compile(r"\{(\w+)(?::[^}]*)?\}")


def _path_template(path: str) -> tuple[str, list[str]]:
    """The OpenAPI template of an aiohttp path (``{x:regex}`` -> ``{x}``) and its names."""
    return _PATH_PARAM.sub(r"{\1}", path), _PATH_PARAM.findall(path)


_ANYONE: list[dict[str, list[str]]] = [{}, {"bearer": []}, {"basic": []}]
_ACCOUNT: list[dict[str, list[str]]] = [{"bearer": []}, {"basic": []}]


def _operation(op: Operation) -> dict[str, Any]:
    _, names = _path_template(op.path)
    parameters: list[dict[str, Any]] = [
        {"name": n, "in": "path", "required": True,
         "schema": op.path_params.get(n, {"type": "string", "minLength": 1})}
        for n in names]
    parameters += [{"name": p.name, "in": "query", "required": p.required,
                    "schema": p.schema, **({"description": p.description}
                                           if p.description else {})}
                   for p in op.all_query]
    answer: dict[str, Any] = {"description": op.summary,
                              "content": {op.content_type: {"schema": op.response}}}
    if op.paginated:
        answer["headers"] = {"Link": {
            "description": 'the next page: <...?n=&last=>; rel="next" (absent on the last)',
            "schema": {"type": "string"}}}
    out: dict[str, Any] = {
        "operationId": op.operation_id, "summary": op.summary, "tags": [op.tag],
        "security": _ANYONE if op.need is Need.READER else _ACCOUNT,
        "x-strata-needs": op.need.value,
        "responses": {str(op.status): answer, "default": {
            "description": "an error of the catalogue (strata/errors.py)",
            "content": {"application/json": {"schema": ref("Errors")}}}},
    }
    if op.description:
        out["description"] = op.description
    if parameters:
        out["parameters"] = parameters
    if op.body is not None:
        out["requestBody"] = {"required": False,
                              "content": {"application/json": {"schema": op.body}}}
    return out


def openapi_document(operations: Iterable[Operation]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of these operations."""
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        template, _ = _path_template(op.path)
        paths.setdefault(template, {})[op.method.lower()] = _operation(op)
    try:
        version = metadata.version("strata")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
        version = "0"
    return {
        "openapi": "3.1.0",
        "info": {"title": "strata JSON API", "version": version,
                 "description": "Images, streams, releases, reviews and builds of a strata "
                                "registry. Errors are the catalogue's "
                                '{"errors": [{"code", "message", "detail"}]}.'},
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "paths": paths,
        "components": {
            "schemas": COMPONENTS,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                           "description": "a token from GET /auth/token "
                                          "(scope strata:api:read or strata:api:write)"},
                "basic": {"type": "http", "scheme": "basic",
                          "description": "an account's name and password (or a robot's "
                                         "secret)"},
            },
        },
    }


async def openapi_json(request: web.Request) -> web.Response:
    operations: list[Operation] = request.app[OPERATIONS]
    return json_response(openapi_document(operations))


_SELF = Operation("GET", OPENAPI_PATH, openapi_json, "this document (OpenAPI 3.1)", "meta",
                  response=ref("OpenApi"))
