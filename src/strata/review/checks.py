"""The automated checks of a review request (``strata image submit``), run at once.

In order, each ``ok`` (True), failed (False) or not run (None, with why):

1. ``containerfile``: the source clones (the server's allow-list was checked before) and its
   Containerfile parses;
2. ``labels``: the label policy passes (:func:`strata.build.labels.check_labels`) and the
   ``name`` label names the submitted image;
3. ``help``: a help file exists (``help.md`` or ``README.md``);
4. ``base``: ``FROM`` (through earlier stages) names an ``active`` base image of the namespace,
   in this registry;
5. ``builds``: the image builds — with the builder, in-process on a thread, RUN in the
   builder's jail, bases pulled from this registry (anonymously: the bases must be pullable);
   nothing is pushed or registered;
6. ``reproducible``: a second build, in a fresh directory, gives the same digest (else the
   detail lists what differs: each differing layer, path and what about it, as
   ``strata build --verify`` does);
7. ``usage``: the ``usage`` (or ``run``) label is present.

The builds run directly with the builder, not as build jobs: a check's build registers no
candidate and must not wait behind the job queue.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHECKS: tuple[tuple[str, str], ...] = (
    ("containerfile", "the Containerfile parses"),
    ("labels", "the label policy passes"),
    ("help", "a help file exists (help.md or README.md)"),
    ("base", "FROM names an active base image of the namespace"),
    ("builds", "the image builds"),
    ("reproducible", "a second build reproduces its digest"),
    ("usage", "the usage (or run) label is present"),
)
@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool | None  # None: not run
    detail: str

    def to_json(self) -> dict[str, Any]:
        title = dict(CHECKS).get(self.name, self.name)
        return {"name": self.name, "title": title, "ok": self.ok, "detail": self.detail}


@dataclass(frozen=True)
class CheckInput:
    repository: str  # f25/cockpit
    namespace: str
    source_url: str
    source_branch: str | None
    active_bases: frozenset[str]  # repositories of the namespace's active images


#: What runs the checks of a request (:class:`SourceChecks`; tests inject others).
Checker = Callable[[CheckInput], Awaitable[list[CheckResult]]]


def passed(results: list[dict[str, Any]]) -> bool:
    return bool(results) and all(r.get("ok") is True for r in results)


class SourceChecks:
    """The default checker: clone, inspect, build twice (see the module's docstring)."""

    def __init__(self, registry_url: str, *, work_dir: Path | None = None,
                 cache_dir: Path | None = None, clone_timeout: float = 300.0) -> None:
        self.registry_url = registry_url
        self.work_dir = work_dir
        self.cache_dir = cache_dir
        self.clone_timeout = clone_timeout

    async def __call__(self, inp: CheckInput) -> list[CheckResult]:
        if self.work_dir is not None:
            self.work_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        top = Path(tempfile.mkdtemp(prefix="strata-review.", dir=self.work_dir))
        try:
            # imported by the first request's checks (the builder: issue #18, peak PSS)
            from strata.review import source_checks

            return await source_checks.run(self, inp, top)
        finally:
            await asyncio.to_thread(shutil.rmtree, top, True)

