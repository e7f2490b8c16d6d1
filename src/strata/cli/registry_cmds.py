"""Commands that read a running registry: ``strata catalog``, ``strata tags``,
``strata inspect``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiohttp
import click

from strata.cli.common import emit, run_remote, server_options
from strata.client.registry import RegistryClient

T = TypeVar("T")


def run_client(url: str, user: str | None, password: str | None,
               fn: Callable[[RegistryClient], Awaitable[T]]) -> T:
    async def go() -> T:
        auth = aiohttp.BasicAuth(user, password or "") if user else None
        async with aiohttp.ClientSession() as session:
            return await fn(RegistryClient(url, session, auth=auth))
    return run_remote(url, go)


@click.command()
@server_options
def catalog(url: str, user: str | None, password: str | None, as_json: bool) -> None:
    """List the repositories of the registry."""
    repos = run_client(url, user, password, lambda c: c.catalog(page_size=1000))
    emit({"repositories": repos}, as_json, lambda d: "\n".join(d["repositories"]))


@click.command()
@server_options
@click.argument("repository")
def tags(url: str, user: str | None, password: str | None, as_json: bool,
         repository: str) -> None:
    """List the tags of REPOSITORY."""
    names = run_client(url, user, password, lambda c: c.tags(repository, page_size=1000))
    emit({"name": repository, "tags": names}, as_json, lambda d: "\n".join(d["tags"]))


@click.command()
@server_options
@click.argument("reference")
def inspect(url: str, user: str | None, password: str | None, as_json: bool,
            reference: str) -> None:
    """Show the manifest of REPOSITORY:TAG or REPOSITORY@DIGEST."""
    if "@" in reference:
        repo, ref = reference.split("@", 1)
    else:
        repo, _, ref = reference.rpartition(":")
        if not repo or "/" in ref:
            repo, ref = reference, "latest"

    async def go(c: RegistryClient) -> dict[str, Any]:
        m = await c.get_manifest(repo, ref)
        return {"repository": repo, "digest": m.digest, "mediaType": m.media_type,
                "manifest": m.json()}

    data = run_client(url, user, password, go)
    emit(data, as_json, lambda d: f"{d['repository']}@{d['digest']} ({d['mediaType']})")


COMMANDS = (catalog, tags, inspect)
