"""The release engine's error: a failure its caller is told about, with a catalogued code.

:class:`ReleaseError` carries a :class:`strata.errors.Code` of the one catalogue (``INVALID``,
``NOT_FOUND``, ``CONFLICT``...), a ``detail`` value and a message; it knows nothing of HTTP.
The JSON API turns it into the catalogue's error body in one place
(:mod:`strata.server.api.errors`).
"""

from __future__ import annotations

from typing import Any

from strata.errors import Code, RegistryError


class ReleaseError(Exception):
    """A refused or failed release use-case: ``code``, ``detail`` and ``message``."""

    def __init__(self, code: Code, detail: Any = None, message: str | None = None) -> None:
        self.code = code
        self.detail = detail
        self.message = message or code.message
        super().__init__(f"{code.name}: {self.message}" + (f" ({detail})" if detail else ""))


def invalid(message: str, detail: Any = None) -> ReleaseError:
    return ReleaseError(Code.INVALID, detail, message)


def conflict(message: str, detail: Any = None) -> ReleaseError:
    return ReleaseError(Code.CONFLICT, detail, message)


def not_found(message: str, detail: Any = None) -> ReleaseError:
    return ReleaseError(Code.NOT_FOUND, detail, message)


CONCURRENT_CHANGE = "a concurrent change conflicts; try again"


def from_registry(exc: RegistryError) -> ReleaseError:
    """The registry's refusal (a manifest unknown, a digest invalid...) as the release
    engine's error, with the same code, detail and message."""
    return ReleaseError(exc.code, exc.detail, exc.message)
