"""``strata history <ns>/<name>`` (no tag): one time line of what happened to an image.

Put together from what the server records, each read over ``/api/v1``:

* the image's events (``GET /api/v1/images/{ns}/{name}/events``): ``submitted``,
  ``approved``, ``rejected``, ``changed``, ``registered``, ``forced-registration`` …;
* its build jobs (``GET /api/v1/builds?repository=``): ``build-queued`` /
  ``rebuild-queued`` when asked for, ``build-succeeded``, ``rebuild-dropped``,
  ``build-failed`` … when it ended;
* its builds (``GET /api/v1/candidates?status=all``): ``candidate-registered``,
  ``candidate-withdrawn``, and ``released`` at the publication of the release that took it
  (``GET /api/v1/releases/{name}``).

Oldest first; ties keep that order (an approval before the build it allowed).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping
from typing import Any

from strata.client.api import ApiClient
from strata.client.registry import ClientError

__all__ = ["image_history", "timeline", "timeline_text"]

Json = Mapping[str, Any]


def _iso(at: Any) -> str | None:
    """A time as the JSON API writes it (ISO 8601 UTC, seconds); epoch seconds converted."""
    if at is None or at == "":
        return None
    if isinstance(at, int | float):
        return dt.datetime.fromtimestamp(float(at), dt.UTC).isoformat(
            timespec="seconds").replace("+00:00", "Z")
    return str(at)


def _epoch(at: Any) -> float:
    """For ordering: epoch seconds (the API gives some times as ISO strings, to the second)."""
    if isinstance(at, int | float):
        return float(at)
    try:
        return dt.datetime.fromisoformat(str(at).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def _event(at: Any, event: str, actor: Any, detail: str, **extra: Any) -> dict[str, Any]:
    # Ordered by the whole second: some times come to the second (ISO strings), others with a
    # fraction (epoch numbers); comparing a truncated time with a precise one put a withdrawal
    # before the build that finished earlier in the same second. Ties keep the gather order.
    return {"at": _iso(at), "event": event, "actor": actor, "detail": detail, **extra,
            "_order": math.floor(_epoch(at))}


def _summary(data: Any) -> str:
    """An event's recorded detail, short: ``key=value`` pairs."""
    if not isinstance(data, Mapping):
        return "" if data is None else str(data)
    def one(value: Any) -> str:
        if isinstance(value, Mapping) and set(value) == {"old", "new"}:  # a change
            return f"{one(value['old'])} -> {one(value['new'])}"
        if isinstance(value, list):
            return ",".join(map(str, value))
        return "-" if value is None else str(value)
    return ", ".join(f"{k}={one(v)}" for k, v in data.items())


def _image_events(events: Iterable[Json]) -> Iterable[dict[str, Any]]:
    for e in events:
        what = "; ".join(x for x in (e.get("reason") or "", _summary(e.get("detail"))) if x)
        yield _event(e.get("at"), str(e.get("event")), e.get("actor"), what, source="image",
                     data=e.get("detail"))


def _job_events(jobs: Iterable[Json]) -> Iterable[dict[str, Any]]:
    for job in jobs:
        kind, state = job.get("kind") or "build", job.get("state")
        yield _event(job.get("created_at"), f"{kind}-queued", job.get("requested_by"),
                     f"job {job.get('id')}" + (f": {job['reason']}" if job.get("reason")
                                               else ""), source="build", job=job.get("id"))
        if job.get("finished_at") is None:
            continue
        if state in ("succeeded", "dropped"):
            what = f"{job.get('result_nvr')} {job.get('result_digest')}"
            if job.get("base_repository"):
                what += (f" on {job['base_repository']}:{job.get('base_tag')} "
                         f"{job.get('base_digest')}")
        else:
            what = str(job.get("error") or "")
        yield _event(job.get("finished_at"), f"{kind}-{state}", job.get("requested_by"),
                     f"job {job.get('id')}: {what}".rstrip(": "), source="build",
                     job=job.get("id"), worker=job.get("worker"))


def _build_events(builds: Iterable[Json],
                  releases: Mapping[str, Json]) -> Iterable[dict[str, Any]]:
    for build in builds:
        nvr, digest = build.get("nvr"), build.get("digest")
        yield _event(build.get("created_at"), "candidate-registered", build.get("created_by"),
                     f"{nvr} {digest}" + (f": {build['reason']}" if build.get("reason")
                                          else ""), source="candidate", nvr=nvr)
        withdrawn = build.get("withdrawn")
        if isinstance(withdrawn, Mapping):
            yield _event(withdrawn.get("at"), "candidate-withdrawn", withdrawn.get("by"),
                         f"{nvr}: {withdrawn.get('reason') or ''}".rstrip(": "),
                         source="candidate", nvr=nvr)
        name = build.get("release_name")
        release = releases.get(str(name)) if name else None
        if release is not None and release.get("published_at"):
            yield _event(release.get("published_at"), "released", release.get("actor"),
                         f"{nvr} in {name} ({release.get('kind') or 'release'})",
                         source="release", nvr=nvr, release=name)


def timeline(events: Iterable[Json], jobs: Iterable[Json], builds: Iterable[Json],
             releases: Mapping[str, Json]) -> list[dict[str, Any]]:
    """Every event, oldest first (a stable sort: ties keep the order above)."""
    found = [*_image_events(events), *_job_events(jobs), *_build_events(builds, releases)]
    found.sort(key=lambda e: e["_order"])
    for e in found:
        del e["_order"]
    return found


async def image_history(api: ApiClient, repository: str) -> dict[str, Any]:
    """The time line of *repository*, read from the server (``--json``'s document)."""
    events = (await api.image_events(repository)).get("events") or []
    jobs = (await api.builds(repository=repository, limit=1000)).get("builds") or []
    builds = (await api.candidates(repository=repository, status="all")).get(
        "candidates") or []
    releases: dict[str, Json] = {}
    for name in sorted({str(b["release_name"]) for b in builds if b.get("release_name")}):
        try:
            releases[name] = await api.release(name)
        except ClientError as exc:  # gone (or unreadable): the build shows without it
            if exc.status not in (403, 404):
                raise
    return {"repository": repository,
            "events": timeline(events, reversed(jobs), builds, releases)}


def timeline_text(data: Json) -> str:
    lines = [f"{e['at'] or '-'}\t{e['event']}\t{e['actor'] or '-'}\t{e['detail']}"
             for e in data["events"]]
    return "\n".join(lines) if lines else f"{data['repository']}: nothing recorded"
