"""The error catalogue: every error code the registry can answer with, in one place.

OCI Distribution Spec v1.1, section "Error Codes": a failed request answers with a JSON body
``{"errors": [{"code": ..., "message": ..., "detail": ...}]}``. Each code here carries its
default message and HTTP status; :func:`error_body` is the one place that renders the body.
Raise :class:`RegistryError` with a :class:`Code`; never spell a code string by hand.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from typing import Any


class Code(enum.Enum):
    """Error codes with their default message and HTTP status."""

    BLOB_UNKNOWN = ("blob unknown to registry", 404)
    BLOB_UPLOAD_INVALID = ("blob upload invalid", 400)
    BLOB_UPLOAD_UNKNOWN = ("blob upload unknown to registry", 404)
    DIGEST_INVALID = ("provided digest did not match uploaded content", 400)
    MANIFEST_BLOB_UNKNOWN = ("manifest references a manifest or blob unknown to registry", 400)
    MANIFEST_INVALID = ("manifest invalid", 400)
    MANIFEST_UNKNOWN = ("manifest unknown to registry", 404)
    NAME_INVALID = ("invalid repository name", 400)
    NAME_UNKNOWN = ("repository name not known to registry", 404)
    SIZE_INVALID = ("provided length did not match content length", 400)
    UNAUTHORIZED = ("authentication required", 401)
    DENIED = ("requested access to the resource is denied", 403)
    UNSUPPORTED = ("the operation is unsupported", 405)
    TOOMANYREQUESTS = ("too many requests", 429)
    # Not in the spec's table, used for ranges and unknown routes with their proper status.
    TAG_INVALID = ("invalid tag", 400)  # distribution's code: a PUT to a tag that is not one
    RANGE_INVALID = ("requested range not satisfiable", 416)
    NOT_FOUND = ("no such endpoint", 404)
    UNAVAILABLE = ("service unavailable", 503)
    UNKNOWN = ("unknown error", 500)
    # Non-registry use-cases (release engine, catalog) reuse the same machinery.
    CONFLICT = ("the request conflicts with the current state", 409)
    INVALID = ("invalid request", 400)

    @property
    def message(self) -> str:
        return self.value[0]

    @property
    def status(self) -> int:
        return self.value[1]


class RegistryError(Exception):
    """A failure that the client is told about, with a catalogued code."""

    def __init__(
        self,
        code: Code,
        detail: Any = None,
        *,
        message: str | None = None,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.code = code
        self.detail = detail
        self.message = message or code.message
        self.status = status or code.status
        self.headers = dict(headers or {})
        super().__init__(f"{code.name}: {self.message}" + (f" ({detail})" if detail else ""))

    def body(self) -> bytes:
        return error_body([self])

    def __reduce__(self) -> tuple[Any, ...]:
        # Picklable (a manifest is decoded in another process and its error comes back).
        return (_rebuild, (self.code, self.detail, self.message, self.status, self.headers))


def _rebuild(code: Code, detail: Any, message: str, status: int,
             headers: dict[str, str]) -> RegistryError:
    return RegistryError(code, detail, message=message, status=status, headers=headers)


def error_body(errors: list[RegistryError]) -> bytes:
    """Render the spec's error JSON for one or more errors."""
    items: list[dict[str, Any]] = []
    for err in errors:
        item: dict[str, Any] = {"code": err.code.name, "message": err.message}
        if err.detail is not None:
            item["detail"] = err.detail
        items.append(item)
    return json.dumps({"errors": items}).encode()
