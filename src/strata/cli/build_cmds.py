"""``strata build`` and ``strata base import``: build images and push them to the server.

Both take ``--url`` / ``$STRATA_URL``, ``$STRATA_USER`` / ``$STRATA_PASSWORD`` and ``--json``.
``SOURCE_DATE_EPOCH`` (or ``--source-date-epoch``) is every timestamp of what a build
writes; without it a build uses the source commit's time.  Progress and ``RUN`` output go to
stderr, the result to stdout.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import click

from strata.build.base import import_base
from strata.build.builder import BuildOptions
from strata.build.context import is_git_url
from strata.build.errors import BuildError
from strata.build.jail import JailLimits
from strata.build.publish import Registry, SourceSpec, run_build
from strata.cli.common import emit, fail, server_options
from strata.client.api import ApiClient
from strata.client.registry import ClientError, RegistryClient

T = TypeVar("T")


def default_cache() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "strata" / "build"


def _run(url: str, user: str | None, password: str | None,
         fn: Callable[[Registry], Awaitable[T]], quiet: bool) -> T:
    async def go() -> T:
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            auth = basic_auth(user, password)
            registry = Registry(url, RegistryClient(url, session, auth=auth),
                                ApiClient(url, session, user=user, password=password))
            return await fn(registry)
    try:
        return asyncio.run(go())
    except BuildError as exc:
        if exc.output and quiet:
            click.echo(exc.output.rstrip("\n"), err=True)
        where = f"line {exc.line}: " if exc.line is not None else ""
        click.echo(f"strata: error: {where}{exc.message}", err=True)
        sys.exit(exc.exit_code)
    except ClientError as exc:
        fail(str(exc))
    except aiohttp.ClientError as exc:
        fail(f"cannot reach {url}: {exc}")
    raise AssertionError("unreachable")


def basic_auth(user: str | None, password: str | None) -> aiohttp.BasicAuth | None:
    """What :class:`RegistryClient` takes for the token endpoint (aiohttp deprecates the
    class, the client still uses it)."""
    if not user:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return aiohttp.BasicAuth(user, password or "")


def _pairs(values: tuple[str, ...], what: str, *, from_env: bool = False) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint=what)
        if not sep:
            if not from_env:
                raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint=what)
            if key not in os.environ:
                continue
            value = os.environ[key]
        out[key] = value
    return out


def _jail_limits() -> JailLimits:
    """The RUN jail's limits: STRATA_BUILD_RUN_TIMEOUT, _MEMORY, _PIDS (see build.jail)."""
    try:
        return JailLimits.from_env(os.environ)
    except BuildError as exc:
        raise click.UsageError(exc.message) from None


def _progress(quiet: bool) -> tuple[Callable[[str], None], Callable[[bytes], None]]:
    def log(text: str) -> None:
        if not quiet:
            click.echo(text, err=True)

    def output(data: bytes) -> None:
        if not quiet:
            sys.stderr.buffer.write(data)
            sys.stderr.flush()
    return log, output


def _build_text(data: dict[str, Any]) -> str:
    if data.get("dropped"):
        same = data.get("unchanged") or {}
        return (f"dropped: unchanged rebuild of {data['repository']} (same source commit, "
                f"base and packages as its current {same.get('status')} {same.get('nvr')} "
                f"{same.get('digest')}); nothing registered")
    lines = [f"{data['nvr']} {data['digest']}", data["reference"]]
    if data.get("reused"):
        commit = (data.get("source") or {}).get("commit") or "?"
        lines.append(f"reused: {data['nvr']} was already built from commit {commit[:12]} "
                     "with the same base and Containerfile (--rebuild builds a new release)")
    if data.get("verified"):
        lines.append(f"verified: two builds, same digest {data['digest']}")
    return "\n".join(lines)


@click.command("build", hidden=True)
@server_options
@click.argument("source")
@click.option("-f", "--file", "containerfile", default=None,
              help="Containerfile, relative to the source (default Containerfile, Dockerfile).")
@click.option("--namespace", default=None, help="Namespace (default: from the name label).")
@click.option("--source-commit", default=None, help="Commit to record (and check out for a "
              "git URL); default: the source's HEAD.")
@click.option("--ref", default=None, help="Branch or tag of a git URL (or URL#ref[:subdir]).")
@click.option("--build-arg", "build_args", multiple=True, help="ARG value, KEY=VALUE.")
@click.option("--target", default=None, help="Build this stage instead of the last one.")
@click.option("--network", type=click.Choice(["none", "host"]), default="none",
              show_default=True, help="Network of RUN commands.")
@click.option("--verify", is_flag=True, help="Build twice in fresh directories; fail unless "
              "the digests are identical (and listing what differs).")
@click.option("--rebuild", is_flag=True, help="Build a new release even if a build of the "
              "same commit, base and Containerfile exists (default: return that one).")
@click.option("--if-changed", is_flag=True, help="Rebuild (as --rebuild), but register it "
              "only if the source commit, base digest or package list differs from the "
              "current candidate's or release's; else it is dropped as unchanged (what the "
              "rebuild loop's jobs do).")
@click.option("--compression", type=click.Choice(["gzip", "zstd"]), default="gzip",
              show_default=True)
@click.option("--source-date-epoch", type=int, envvar="SOURCE_DATE_EPOCH", default=None,
              help="Every timestamp the build writes (default $SOURCE_DATE_EPOCH, else the "
              "commit time).")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None,
              envvar="STRATA_BUILD_CACHE",
              help="Base image cache (default $STRATA_BUILD_CACHE, else ~/.cache/strata/build).")
@click.option("--work-dir", type=click.Path(path_type=Path), default=None,
              help="Where temporary build directories go (default $TMPDIR).")
@click.option("-q", "--quiet", is_flag=True, help="No progress output.")
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="<ns>/<name>: follow the server's build until it ends.")
@click.option("--reason", default=None, help="<ns>/<name>: why (recorded on the job); with "
              "--force: why (recorded in the image's events).")
@click.option("--force", is_flag=True, help="releng/admin: build and register an image that "
              "is not approved (needs --reason).")
def build_source(url: str, user: str | None, password: str | None, as_json: bool, source: str,
          containerfile: str | None, namespace: str | None, source_commit: str | None,
          ref: str | None, build_args: tuple[str, ...], target: str | None, network: str,
          verify: bool, rebuild: bool, if_changed: bool, compression: str,
          source_date_epoch: int | None, cache_dir: Path | None, work_dir: Path | None,
          quiet: bool, wait: bool, reason: str | None, force: bool) -> None:
    """Build SOURCE (a directory or a git URL) and push it as a release candidate; or, for
    a repository name <ns>/<name>, ask the server to build the image from its registered
    source at its branch head (a build job: strata build list|show|logs ID).

    Only approved (active) images are built: a new image is submitted for review first
    ('strata image submit').

    Exit codes: 0 built (or reused, or dropped as unchanged), 1 the build failed, 2 usage
    error or the label policy / LABEL release= / an unapproved image refused, 3 a RUN step
    failed."""
    if _is_repository(source):
        from strata.cli.build_jobs import server_build

        server_build(url, user, password, as_json, source, rebuild=rebuild or if_changed,
                     wait=wait, reason=reason, quiet=quiet)
        return
    if force and not (reason or "").strip():
        raise click.UsageError("--force needs --reason (recorded in the image's events)")
    opts = BuildOptions(
        cache_dir=cache_dir or default_cache(), containerfile=containerfile,
        namespace=namespace, build_args=_pairs(build_args, "--build-arg", from_env=True),
        target=target, network="host" if network == "host" else "none",
        compression="zstd" if compression == "zstd" else "gzip",
        level=3 if compression == "zstd" else 1, limits=_jail_limits())
    spec = SourceSpec(source, ref=ref, commit=source_commit,
                      source_date_epoch=source_date_epoch)
    log, output = _progress(quiet or as_json)
    data = _run(url, user, password, lambda registry: run_build(
        registry, spec, opts, verify=verify, rebuild=rebuild, if_changed=if_changed,
        work_parent=work_dir, log=log,
        output=output, clean_in_background=True, force_reason=reason if force else None),
        quiet or as_json)
    emit(data, as_json, _build_text)


_REPOSITORY = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
                         r"/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")


def _is_repository(source: str) -> bool:
    """``<ns>/<name>`` that is neither a directory here nor a git URL."""
    return (bool(_REPOSITORY.fullmatch(source)) and not Path(source).exists()
            and not is_git_url(source))


class _BuildGroup(click.Group):
    """``strata build list|show|logs``; anything else is ``strata build SOURCE``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or args[0] not in ("list", "show", "logs"):
            args = ["source", *args]
        return super().parse_args(ctx, args)

    def resolve_command(self, ctx: click.Context, args: list[str]
                        ) -> tuple[str | None, click.Command | None, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        return ("" if name == "source" else name), command, rest  # "strata build SOURCE"


def _build_group() -> click.Group:
    from strata.cli.build_jobs import build_list, build_logs, build_show

    group = _BuildGroup("build", help=build_source.help, add_help_option=False)
    group.add_command(build_source, "source")
    group.add_command(build_list)
    group.add_command(build_show)
    group.add_command(build_logs)
    return group


@click.group()
def base() -> None:
    """Base images: root filesystems imported as one-layer images."""


@base.command("import")
@server_options
@click.argument("rootfs", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--name", required=True, help="Repository and name label: at the root "
              "(fedora, f25) or in the namespace (f25/fedora).")
@click.option("--version", "version", required=True, help="Version label (e.g. 25).")
@click.option("--namespace", default=None, help="Namespace the base belongs to (its dist tag, "
              "FGC, its releases); default: the image's, else the one with --dist-tag, else "
              "the namespace named --name.")
@click.option("--dist-tag", default=None, help="Dist tag (default: the namespace's; must be "
              "the namespace's).")
@click.option("--label", "labels", multiple=True, help="Extra label, KEY=VALUE.")
@click.option("--source-date-epoch", type=int, envvar="SOURCE_DATE_EPOCH", default=0,
              show_default=True, help="Clamp every timestamp.")
@click.option("--work-dir", type=click.Path(path_type=Path), default=None)
def base_import(url: str, user: str | None, password: str | None, as_json: bool, rootfs: Path,
                name: str, version: str, namespace: str | None, dist_tag: str | None,
                labels: tuple[str, ...], source_date_epoch: int, work_dir: Path | None) -> None:
    """Import ROOTFS (a tarball, possibly compressed) as base image NAME.

    The base is pushed by digest and registered as a candidate of its namespace; a release
    (strata release publish, or strata release oob) gives it its tags (V-R, V, latest).
    """
    extra = _pairs(labels, "--label")
    data = _run(url, user, password, lambda registry: import_base(
        registry, rootfs, name=name, version=version, namespace=namespace, dist_tag=dist_tag,
        labels=extra, source_date_epoch=source_date_epoch, work_parent=work_dir), True)
    emit(data, as_json, _base_text)


def _base_text(data: dict[str, Any]) -> str:
    return (f"{data['nvr']} {data['digest']}\n{data['reference']}\n"
            f"a candidate of namespace {data['namespace']}: release it with "
            f"'strata release publish --namespace {data['namespace']}' or "
            f"'strata release oob {data['repository']}@{data['digest']} --advisory ID "
            f"--reason TEXT'")


build = _build_group()

COMMANDS = [build, base]
