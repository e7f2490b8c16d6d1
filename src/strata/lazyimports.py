"""Third-party modules strata defers to their first use, so that a serving process does not
carry them (issue #18: peak PSS of ``strata serve``; ``bench/memory.py`` measures it).

``jsonschema`` imports every optional format checker it finds when it is imported itself.
One of them, ``rfc3987_syntax`` (installed by cyclonedx's validation extra), builds a Lark
Earley parser for RFC 3987 at import: ~14 MiB of Python objects and ~1.5 s in every process,
for the ``iri`` format that strata's own schemas never use. :func:`defer_rfc3987_syntax`
puts a stand-in under that name before ``jsonschema`` is imported; its ``is_valid_syntax``
imports the real module on its first call and hands every call to it, so an ``iri`` check
(a CycloneDX document validated with format checking) behaves as before.

Another, ``isoduration`` (the ``duration`` format), brings ``arrow`` and ``dateutil``: ~1.6
MiB per process. :func:`defer_isoduration` puts a stand-in under that name the same way: its
``parse_duration`` imports the real module on first call and raises the stand-in's
``DurationParsingException`` (the class jsonschema registered for the format) for the real
one's; any other attribute is the real module's.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types
from collections.abc import Callable

_RFC3987 = "rfc3987_syntax"


def defer_rfc3987_syntax() -> None:
    """Install the stand-in (once; not when jsonschema or the module is already imported,
    nor when the module is not installed: jsonschema then has no ``iri`` checker, as
    before)."""
    if _RFC3987 in sys.modules or "jsonschema" in sys.modules:
        return
    if importlib.util.find_spec(_RFC3987) is None:
        return
    stub = types.ModuleType(_RFC3987, "stand-in: the real module is imported on first use")
    lock = threading.Lock()
    real: list[Callable[[str, str], bool]] = []

    def is_valid_syntax(term: str, value: str) -> bool:
        if not real:
            with lock:
                if not real:
                    if sys.modules.get(_RFC3987) is stub:
                        del sys.modules[_RFC3987]
                    real.append(importlib.import_module(_RFC3987).is_valid_syntax)
        return real[0](term, value)

    stub.is_valid_syntax = is_valid_syntax  # type: ignore[attr-defined]
    sys.modules[_RFC3987] = stub


class LazyModule(types.ModuleType):
    """A stand-in for module ``name``, imported on first attribute access (thread-safe);
    afterwards the stand-in holds the module's attributes itself, so reads cost what they cost
    on the module. For a third-party module only requests of some kinds need (templates,
    Markdown, compression): a serving worker that never handles one does not carry it
    (issue #18, peak PSS). Use it as::

        if TYPE_CHECKING:
            import jinja2
        else:
            jinja2 = LazyModule("jinja2")
    """

    def __init__(self, name: str) -> None:
        super().__init__(name, f"stand-in: {name} is imported on first use")
        self.__dict__["_lazy_lock"] = threading.Lock()

    def __getattr__(self, attr: str) -> object:
        with self.__dict__["_lazy_lock"]:
            real = importlib.import_module(self.__name__)
            self.__dict__.update(real.__dict__)
        try:
            return self.__dict__[attr]
        except KeyError:
            raise AttributeError(f"module {self.__name__!r} has no attribute {attr!r}") from None


_ISODURATION = "isoduration"


class _DurationParsingException(ValueError):
    """The stand-in's exception (jsonschema's ``duration`` checker catches this class)."""


class _IsodurationStandIn(types.ModuleType):
    DurationParsingException = _DurationParsingException

    def __init__(self) -> None:
        super().__init__(_ISODURATION, "stand-in: the real module is imported on first use")
        self.__dict__["_lock"] = threading.Lock()

    def _real(self) -> types.ModuleType:
        with self.__dict__["_lock"]:
            if sys.modules.get(_ISODURATION) is self:
                del sys.modules[_ISODURATION]
            return importlib.import_module(_ISODURATION)

    def parse_duration(self, value: str) -> object:
        real = self._real()
        try:
            return real.parse_duration(value)
        except real.DurationParsingException as exc:
            raise _DurationParsingException(str(exc)) from exc

    def __getattr__(self, attr: str) -> object:
        return getattr(self._real(), attr)


def defer_isoduration() -> None:
    """Install the ``isoduration`` stand-in (as :func:`defer_rfc3987_syntax`)."""
    if _ISODURATION in sys.modules or "jsonschema" in sys.modules:
        return
    if importlib.util.find_spec(_ISODURATION) is None:
        return
    sys.modules[_ISODURATION] = _IsodurationStandIn()
