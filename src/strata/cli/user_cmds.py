"""Accounts, offline on the data dir: ``strata user add|passwd|list``, ``strata robot add|revoke``.

They work on the metadata database directly (``--data DIR``, or ``--database-url`` for
PostgreSQL), which must hold strata data already (``strata init`` or the first ``strata serve``
makes it): a directory or database with none is refused, nothing created.

- ``strata user add NAME --role ROLE [--image NS/NAME]… [--password-stdin]``: roles are
  ``admin``, ``releng``, ``maintainer`` (of the ``--image`` repositories, at least one) and
  ``reviewer``. Without ``--password-stdin`` the password is prompted for (twice).
- ``strata user passwd NAME [--password-stdin]``.
- ``strata user list [--json]``: users and robots, with roles, images and state.
- ``strata robot add NAME [--role ROLE] [--image NS/NAME]…``: prints the robot's token once on
  stdout (only its hash is kept). A robot is a build machine's account: by default it has the
  ``releng`` role (push to every image), or ``maintainer`` of the ``--image`` repositories.
  Clients log in with the robot's NAME as user name and the token as password.
- ``strata robot revoke NAME``: the token stops working at once for new logins; tokens already
  issued from it expire within five minutes.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import click

from strata.auth.accounts import GRANTABLE_ROLES, Account, AccountKind
from strata.auth.passwords import PasswordHashing
from strata.auth.policy import Role
from strata.auth.service import AccountExists, AccountNotFound, AuthService
from strata.cli.common import data_option, database_option, emit, fail, open_database
from strata.meta.account_store import SqlAccountStore
from strata.storage.private import owner_only_umask

ROLE_CHOICE = click.Choice([r.value for r in GRANTABLE_ROLES])


def _images_option(who: str) -> Callable[[click.decorators.FC], click.decorators.FC]:
    return click.option("--image", "images", multiple=True, metavar="NS/NAME",
                        help=f"A repository the {who} maintains (repeatable).")


@contextlib.contextmanager
def _service(data_dir: Path, database_url: str | None) -> Iterator[AuthService]:
    owner_only_umask()
    with open_database(data_dir, database_url) as db:
        try:
            yield AuthService(SqlAccountStore(db), PasswordHashing())
        except (AccountExists, AccountNotFound, ValueError) as exc:
            message = {AccountExists: "an account named {} exists already",
                       AccountNotFound: "no such account: {}"}.get(type(exc), "{}")
            fail(message.format(exc))


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        password = line[:-1] if line.endswith("\n") else line
        return password[:-1] if password.endswith("\r") else password
    value: str = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return value


def _roles_text(account: Account) -> str:
    roles = sorted(r.value for r in account.roles)
    if account.images:
        roles = [r if r != Role.MAINTAINER else f"maintainer({', '.join(sorted(account.images))})"
                 for r in roles]
    return ", ".join(roles) or "-"


def _as_dict(account: Account) -> dict[str, object]:
    return {"name": account.name, "kind": account.kind.value,
            "roles": sorted(r.value for r in account.roles), "images": sorted(account.images),
            "created_at": account.created_at, "revoked_at": account.revoked_at}


@click.group()
def user() -> None:
    """Manage user accounts (offline, on the data dir)."""


@user.command("add")
@data_option
@database_option
@click.argument("name")
@click.option("--role", type=ROLE_CHOICE, required=True, help="What the user may do.")
@_images_option("maintainer")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
def user_add(data_dir: Path, database_url: str | None, name: str, role: str,
             images: tuple[str, ...], password_stdin: bool) -> None:
    """Create user NAME with ROLE."""
    password = _read_password(password_stdin)
    with _service(data_dir, database_url) as service:
        account = service.add_user(name, password, Role(role), images)
        click.echo(f"created user {account.name}: {_roles_text(account)}")


@user.command("passwd")
@data_option
@database_option
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
def user_passwd(data_dir: Path, database_url: str | None, name: str,
                password_stdin: bool) -> None:
    """Set the password of user NAME."""
    password = _read_password(password_stdin)
    with _service(data_dir, database_url) as service:
        service.set_password(name, password)
        click.echo(f"password of {name} changed")


@user.command("roles")
@data_option
@database_option
@click.argument("name")
@click.option("--role", type=ROLE_CHOICE, required=True, help="What the account may do now.")
@_images_option("maintainer")
def user_roles(data_dir: Path, database_url: str | None, name: str, role: str,
               images: tuple[str, ...]) -> None:
    """Replace the role (and images) of user or robot NAME."""
    with _service(data_dir, database_url) as service:
        account = service.set_roles(name, Role(role), images)
        click.echo(f"{account.kind.value} {account.name}: {_roles_text(account)}")


def _activation(name: str, active: bool, help_text: str) -> None:
    @user.command(name, help=help_text)
    @data_option
    @database_option
    @click.argument("account", metavar="NAME")
    def command(data_dir: Path, database_url: str | None, account: str) -> None:
        with _service(data_dir, database_url) as service:
            service.set_active(account, active)
            click.echo(f"{name}d user {account}")


_activation("disable", False,
            "Disable user NAME: no more logins or tokens; tokens and logins already made stop "
            "working at once, on every server process.")
_activation("enable", True, "Enable user NAME again.")


@user.command("list")
@data_option
@database_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def user_list(data_dir: Path, database_url: str | None, as_json: bool) -> None:
    """List users and robots with their roles."""
    with _service(data_dir, database_url) as service:
        accounts = service.accounts()

    def text(rows: list[dict[str, object]]) -> str:
        lines = [f"{'NAME':<24} {'KIND':<6} {'STATE':<8} ROLES"]
        for a in accounts:
            state = "active" if a.active else (
                "disabled" if a.kind is AccountKind.USER else "revoked")
            lines.append(f"{a.name:<24} {a.kind.value:<6} {state:<8} {_roles_text(a)}")
        return "\n".join(lines)

    emit([_as_dict(a) for a in accounts], as_json, text)


@click.group()
def robot() -> None:
    """Manage robot accounts: tokens for build machines."""


@robot.command("add")
@data_option
@database_option
@click.argument("name")
@click.option("--role", type=ROLE_CHOICE, default=None,
              help="Default: maintainer with --image, else releng.")
@_images_option("robot")
def robot_add(data_dir: Path, database_url: str | None, name: str, role: str | None,
              images: tuple[str, ...]) -> None:
    """Create robot NAME and print its token (shown this once)."""
    chosen = Role(role) if role else (Role.MAINTAINER if images else Role.RELENG)
    with _service(data_dir, database_url) as service:
        account, secret = service.add_robot(name, chosen, images)
        click.echo(f"created robot {account.name}: {_roles_text(account)}; log in as "
                   f"{account.name!r} with this token (it is not shown again):", err=True)
        click.echo(secret)


@robot.command("revoke")
@data_option
@database_option
@click.argument("name")
def robot_revoke(data_dir: Path, database_url: str | None, name: str) -> None:
    """Revoke robot NAME's token."""
    with _service(data_dir, database_url) as service:
        service.revoke_robot(name)
        click.echo(f"revoked robot {name}")


COMMANDS = (user, robot)
