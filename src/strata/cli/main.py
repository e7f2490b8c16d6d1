"""``strata`` entry point: the command groups.

Commands are imported when they run (or when ``--help`` lists them): a ``strata tags`` need
not import the server, the builder and the release engine first. ``strata serve`` and
``strata worker`` are the server's own commands (:mod:`strata.server.serve_cmd`,
:mod:`strata.server.worker_cmd`), loaded by name like the others: nothing in
:mod:`strata.cli` imports the server.
"""

from __future__ import annotations

import importlib
import logging

import click

# name -> "module:attribute" (modules under strata.cli unless dotted)
_COMMANDS = {
    "serve": "strata.server.serve_cmd:serve",
    "init": "init_cmd:init",
    "catalog": "registry_cmds:catalog",
    "tags": "registry_cmds:tags",
    "inspect": "registry_cmds:inspect",
    "gc": "gc_cmd:gc",
    "scrub": "scrub_cmd:scrub",
    "namespace": "release_cmds:namespace",
    "image": "release_cmds:image",
    "review": "review_cmds:review",
    "candidate": "release_cmds:candidate",
    "release": "release_cmds:release",
    "stream": "release_cmds:stream",
    "history": "release_cmds:history",
    "search": "search_cmd:search",
    "webhook": "release_cmds:webhook",
    "build": "build_cmds:build",
    "base": "build_cmds:base",
    "worker": "strata.server.worker_cmd:worker",
    "user": "user_cmds:user",
    "robot": "user_cmds:robot",
    "auth": "auth_cmds:auth",
    "demo": "demo:demo",
    "key": "trust_cmds:key",
    "trust": "trust_cmds:trust",
    "verify": "verify_cmd:verify",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, _, attribute = target.partition(":")
        path = module if "." in module else f"strata.cli.{module}"
        command = getattr(importlib.import_module(path), attribute)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="strata")
@click.option("-v", "--verbose", count=True, help="More log output.")
def cli(verbose: int) -> None:
    """strata: build, release and serve layered container images."""
    logging.basicConfig(level=logging.WARNING - 10 * verbose,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")


def main() -> None:
    cli(prog_name="strata")
