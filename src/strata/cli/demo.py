"""``strata demo seed``: push a small, runnable demo image so a fresh server has content."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import os
import shutil
import tarfile
import time
from pathlib import Path

import aiohttp
import click

from strata.cli import demo_story
from strata.cli.common import fail, server_options
from strata.client.registry import ClientError, RegistryClient, sha256

EPOCH = 1_700_000_000


def _layer(busybox: Path | None) -> tuple[bytes, bytes]:
    """A gzip layer (and its uncompressed tar) with busybox, or a text file without it."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        def add(name: str, data: bytes | None = None, *, mode: int = 0o755,
                kind: bytes = tarfile.DIRTYPE, link: str = "") -> None:
            info = tarfile.TarInfo(name)
            info.mtime, info.mode, info.type, info.linkname = EPOCH, mode, kind, link
            info.size = len(data) if data is not None else 0
            tar.addfile(info, io.BytesIO(data) if data is not None else None)

        add("bin")
        if busybox is not None:
            add("bin/busybox", busybox.read_bytes(), kind=tarfile.REGTYPE)
            for tool in ("sh", "echo", "ls", "cat"):
                add(f"bin/{tool}", kind=tarfile.SYMTYPE, link="busybox", mode=0o777)
        add("etc")
        add("etc/motd", b"hello from strata\n", mode=0o644, kind=tarfile.REGTYPE)
    tar_bytes = raw.getvalue()
    return gzip.compress(tar_bytes, compresslevel=6, mtime=0), tar_bytes


def demo_image() -> tuple[bytes, bytes]:
    busybox_path = shutil.which("busybox")
    busybox = Path(busybox_path) if busybox_path else None
    layer, tar_bytes = _layer(busybox)
    cmd = ["/bin/busybox", "cat", "/etc/motd"] if busybox else ["/etc/motd"]
    config = {
        "architecture": "amd64", "os": "linux",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(EPOCH)),
        "config": {"Cmd": cmd, "Env": ["PATH=/bin"], "Labels": {
            "name": "busybox", "version": "1", "release": "1",
            "summary": "strata demo image", "maintainer": "strata"}},
        "rootfs": {"type": "layers", "diff_ids": [sha256(tar_bytes)]},
        "history": [{"created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(EPOCH)),
                     "created_by": "strata demo seed"}],
    }
    return layer, json.dumps(config, sort_keys=True, separators=(",", ":")).encode()


async def seed(url: str, wait: float, auth: aiohttp.BasicAuth | None = None) -> str:
    layer, config = demo_image()
    deadline = time.monotonic() + wait
    async with aiohttp.ClientSession() as session:
        client = RegistryClient(url, session, auth=auth)
        while True:
            try:
                await client.ping()
                break
            except (aiohttp.ClientError, ClientError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
        digest = await client.push_image("demo/busybox", "latest", [layer], config)
        await client.put_manifest("demo/busybox", "1",
                                  (await client.get_manifest("demo/busybox", digest)).content,
                                  "application/vnd.oci.image.manifest.v1+json")
        return digest


@click.group()
def demo() -> None:
    """Demo content."""


@demo.command("seed")
@server_options
@click.option("--wait", type=float, default=0.0, help="Seconds to wait for the server.")
def seed_cmd(url: str, user: str | None, password: str | None, as_json: bool,
             wait: float) -> None:
    """Push demo/busybox:latest (a runnable busybox image when busybox is installed)."""
    try:
        auth = aiohttp.BasicAuth(user, password or "") if user else None
        digest = asyncio.run(seed(url, wait, auth))
    except (aiohttp.ClientError, ClientError) as exc:
        fail(f"cannot seed {url}: {exc}")
        return
    click.echo(json.dumps({"repository": "demo/busybox", "digest": digest}) if as_json
               else f"pushed demo/busybox:latest and :1 ({digest})")


@demo.command("story")
@server_options
@click.option("--work", "work", type=click.Path(path_type=Path), required=True,
              help="Where the demo's git repositories and root filesystems go (a directory "
                   "the server may clone from: strata serve --source-allow file://WORK).")
@click.option("--wait", type=float, default=30.0, help="Seconds to wait for the server.")
@click.option("--reviewer", default=None,
              help="The account that approves the images' reviews (password: "
                   "$STRATA_REVIEWER_PASSWORD); without it the images are registered with "
                   "strata image add.")
@click.option("--timeout", type=float, default=180.0,
              help="Seconds to wait for the rebuilds on the new base.")
def story_cmd(url: str, user: str | None, password: str | None, as_json: bool,
              work: Path, wait: float, reviewer: str | None, timeout: float) -> None:
    """Tell the release story of namespace f25: a busybox base, three images built from git on
    the server and released on the schedule, then a base update whose rebuilds go out of band.
    Steps already done on the server are skipped."""

    env = {"STRATA_USER": user or "", "STRATA_PASSWORD": password or ""} if user else {}
    cli = demo_story.Cli(url, env)
    approver = demo_story.Cli(url, {
        "STRATA_USER": reviewer,
        "STRATA_PASSWORD": os.environ.get("STRATA_REVIEWER_PASSWORD", "")}) if reviewer else None
    deadline = time.monotonic() + wait
    while not cli.ok("namespace", "list"):
        if time.monotonic() > deadline:
            fail(f"no strata server answers at {url}")
        time.sleep(0.3)
    lines: list[str] = []

    def say(line: str) -> None:
        lines.append(line)
        if not as_json:
            click.echo(f"- {line}")

    os.umask(0o077)  # the work area lies in the data dir, which strata serve keeps owner-only
    try:
        demo_story.tell(cli, work.resolve(), say, timeout=timeout, reviewer=approver)
    except demo_story.DemoError as exc:
        fail(f"demo story: {exc}")
        return
    if as_json:
        click.echo(json.dumps({"steps": lines}))
    else:
        click.echo()
        for line in demo_story.how_to_look(url, "strata"):
            click.echo(line)
