"""``strata`` entry point: the command groups."""

from __future__ import annotations

import logging

import click

from strata.cli import build_cmds, demo, gc_cmd, registry_cmds, release_cmds, serve_cmd, user_cmds


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="strata")
@click.option("-v", "--verbose", count=True, help="More log output.")
def cli(verbose: int) -> None:
    """strata: build, release and serve layered container images."""
    logging.basicConfig(level=logging.WARNING - 10 * verbose,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")


cli.add_command(serve_cmd.serve)
cli.add_command(user_cmds.user)
cli.add_command(user_cmds.robot)
cli.add_command(demo.demo)
cli.add_command(gc_cmd.gc)
for command in (*registry_cmds.COMMANDS, *release_cmds.COMMANDS, *build_cmds.COMMANDS):
    cli.add_command(command)


def main() -> None:
    cli(prog_name="strata")
