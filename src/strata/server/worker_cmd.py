"""``strata worker``: build jobs taken from the queue in the database, on any machine.

Several workers (and servers) share one queue: a job is claimed with ``FOR UPDATE SKIP
LOCKED`` on PostgreSQL (the data dir's write lock on SQLite, so one machine), so each job
goes to one runner; a worker keeps a heartbeat on its jobs, and any worker queues again the
jobs whose heartbeat is older than ``--lease`` (their worker died), up to three attempts.

A worker pushes and registers what it builds through the registry at ``--url``, acting for the
account that asked for each job with a token signed by the servers' signing key, which it reads
from the database: it needs the servers' secret key to open it (``--secret-key-file``, the
file every node is given, else ``DATA/auth/webhook-key`` of its ``--data``). ``--data`` is the
worker's work area (clones, build directories, the base image cache), owner-only.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from pathlib import Path

import click

from strata.build.jail import JailLimits
from strata.cli.common import data_option, database_option, secret_key_option
from strata.config import DEFAULT_SOURCE_ALLOW, ServerSettings
from strata.jobs.runner import BuildRunner, RunnerSettings
from strata.meta.build_store import BuildStore
from strata.meta.connection import sqlite_url
from strata.meta.database import Database
from strata.server.auth_setup import build_auth
from strata.server.builds import token_minter
from strata.storage.private import owner_only_umask, private_dir


@click.command()
@data_option
@database_option
@click.option("--url", "registry_url", required=True, envvar="STRATA_URL",
              help="The registry the builds are pushed to (the server's public URL).")
@click.option("--source-allow", "source_allow", multiple=True, metavar="PREFIX",
              help="Git URL prefix a source may have (repeatable; default https:// only).")
@click.option("--concurrency", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Jobs this worker runs at once.")
@click.option("--lease", type=click.FloatRange(min=5.0), default=60.0, show_default=True,
              help="Seconds without a heartbeat after which a running job is queued again.")
@click.option("--worker-id", default=None, help="Name recorded on the jobs it runs "
              "(default worker@HOST:PID).")
@click.option("--auth/--no-auth", "auth", default=True, show_default=True,
              help="Sign tokens for the requesters with the servers' key in the database "
                   "(--no-auth: the registry is open).")
@secret_key_option
@click.option("--poll", type=click.FloatRange(min=0.05), default=0.25, show_default=True,
              help="Seconds between looks at an empty queue.")
def worker(data_dir: Path, database_url: str | None, registry_url: str,
           source_allow: tuple[str, ...], concurrency: int, lease: float,
           worker_id: str | None, auth: bool, secret_key_file: Path | None,
           poll: float) -> None:
    """Run build jobs from the queue in the database until stopped."""
    owner_only_umask()
    data_dir = data_dir.resolve()
    private_dir(data_dir)
    db = Database(database_url or sqlite_url(data_dir))
    settings = ServerSettings(data_dir=data_dir, database_url=database_url, auth=auth,
                              secret_key_file=secret_key_file)
    store = BuildStore(db)
    name = worker_id or f"worker@{socket.gethostname()}:{os.getpid()}"
    runner = BuildRunner(store, RunnerSettings(
        registry_url=registry_url, work_dir=data_dir / "work" / "builds",
        cache_dir=data_dir / "work" / "cache",
        source_allow=source_allow or DEFAULT_SOURCE_ALLOW, worker_id=name,
        concurrency=concurrency, heartbeat_seconds=min(10.0, lease / 3),
        poll_seconds=poll, lease_seconds=lease, limits=JailLimits.from_env(os.environ)),
        credentials=token_minter(build_auth(settings, db)), sources=store.image_source)
    print(f"strata: worker {name} takes build jobs from {db.url}", file=sys.stderr,
          flush=True)
    try:
        asyncio.run(_run(runner, store, name))
    finally:
        db.close()


async def _run(runner: BuildRunner, store: BuildStore, name: str) -> None:
    """Until SIGTERM or SIGINT; then the jobs this worker was running go back in the queue at
    once (not after the lease)."""
    task = asyncio.create_task(runner.run_forever())
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task
    again = await store.requeue_interrupted(worker=name)
    if again:
        print(f"strata: worker {name} stopped; job(s) {', '.join(map(str, again))} queued "
              "again", file=sys.stderr, flush=True)
