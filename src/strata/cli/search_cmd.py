"""``strata search TERM [--package NAME[=VER]]``: search a server's catalog (``/api/v1/search``
and ``/api/v1/search/packages``).

Without ``--package``: images whose name, summary, labels or help file have every word of
TERM, name matches first, one a line (``REPOSITORY  STATUS  NVR  SUMMARY``). With
``--package``: the builds that contain the package (at that version: exactly, or as
``VER-release``), with the release each was in (``pending`` until one publishes it); a TERM
then narrows them to the images it finds. ``--url``/``$STRATA_URL``, ``$STRATA_USER`` and
``--json`` as every server command.
"""

from __future__ import annotations

from typing import Any

import click

from strata.cli.common import emit, fail, server_options
from strata.cli.release_cmds import run_api
from strata.client.api import ApiClient

MAX_RESULTS = 1000


async def _pages(fetch: Any, params: dict[str, str], limit: int) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    while len(results) < limit:
        body = await fetch({**params, "n": str(min(100, limit - len(results)))})
        results += body["results"]
        if body.get("next") is None:
            break
        params = {**params, "cursor": body["next"]}
    return results


def _images_text(results: list[dict[str, Any]]) -> str:
    if not results:
        return "no images found"
    width = max(len(r["repository"]) for r in results)
    return "\n".join(
        f"{r['repository']:<{width}}  {r['status'] + (' (EOL)' if r['eol'] else ''):<15}  "
        f"{r['nvr'] or '-':<30}  {r['summary']}".rstrip() for r in results)


def _packages_text(results: list[dict[str, Any]]) -> str:
    if not results:
        return "no builds contain that package"
    width = max(len(r["repository"]) for r in results)
    return "\n".join(
        f"{r['repository']:<{width}}  {r['nvr']:<30}  "
        f"{r['package']['name']}-{r['package']['version']}.{r['package']['arch']}  "
        f"{r['release'] or 'pending'}" for r in results)


@click.command()
@server_options
@click.argument("term", nargs=-1)
@click.option("--package", "package", metavar="NAME[=VER]", default=None,
              help="Builds that contain this package (at this version).")
@click.option("--namespace", default=None, help="Only images of this namespace.")
@click.option("--status", type=click.Choice(["in-review", "active", "retired"]), default=None,
              help="Only images with this status.")
@click.option("--eol/--supported", "eol", default=None,
              help="Only images whose every stream ended (--eol) or not (--supported).")
@click.option("--limit", type=click.IntRange(1, MAX_RESULTS), default=25, show_default=True,
              help="At most this many results.")
def search(url: str, user: str | None, password: str | None, as_json: bool,
           term: tuple[str, ...], package: str | None, namespace: str | None,
           status: str | None, eol: bool | None, limit: int) -> None:
    """Search images by TERM (name, summary, labels, help), or builds by --package."""
    text = " ".join(term).strip()
    if not text and package is None:
        fail("give a TERM to search for, or --package NAME[=VER]")
    params = {k: v for k, v in (("q", text), ("namespace", namespace)) if v}
    if package is not None:
        params["name"] = package
        if status is not None or eol is not None:
            fail("--status and --eol/--supported filter images, not --package searches")

        async def go_packages(api: ApiClient) -> list[dict[str, Any]]:
            return await _pages(api.search_packages, params, limit)
        found = run_api(url, user, password, go_packages)
        emit({"results": found}, as_json, lambda d: _packages_text(d["results"]))
        return
    if status is not None:
        params["status"] = status
    if eol is not None:
        params["eol"] = "true" if eol else "false"

    async def go(api: ApiClient) -> list[dict[str, Any]]:
        return await _pages(api.search, params, limit)
    found = run_api(url, user, password, go)
    emit({"results": found}, as_json, lambda d: _images_text(d["results"]))
