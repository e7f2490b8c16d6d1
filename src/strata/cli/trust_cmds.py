"""Release keys and client trust (issue 16), over a running server's ``/api/v1``:

- ``strata key list <ns>``: the namespace's keys (current, then retired);
- ``strata key show <ns> [KEY_ID]``: a public key as PEM (default: the current one);
- ``strata key rotate <ns>``: a new current key (releng/admin); the old one stays published,
  so what it signed stays valid;
- ``strata trust config <ns> [--host HOST]``: the ``policy.json`` (``sigstoreSigned`` with the
  keys inline, ``signedIdentity`` ``matchRepository``; when HOST is not the registry strata
  signs for, one ``exactRepository`` entry per image of the namespace, the rest of it
  refused) and the ``registries.d`` snippet
  (``use-sigstore-attachments: true``) a podman/skopeo user needs. ``--policy-only`` /
  ``--registries-d-only`` print one of them (to redirect into a file).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import click

from strata.cli.common import emit, fail, server_options
from strata.cli.release_cmds import run_api
from strata.client.api import ApiClient
from strata.trust.service import client_config


def _when(at: float | None) -> str:
    return "-" if at is None else dt.datetime.fromtimestamp(at, dt.UTC).strftime(
        "%Y-%m-%d %H:%M UTC")


def _keys_text(data: dict[str, Any]) -> str:
    lines = [f"release keys of {data['namespace']} (signatures name "
             f"{data['signed_identity']}/<image>):"]
    for k in data["keys"]:
        lines.append(f"  {k['key_id'][:16]}  {k['status']:8} created {_when(k['created_at'])} "
                     f"by {k['created_by']}" + (f", retired {_when(k['retired_at'])}"
                                                if k["retired_at"] else ""))
    if not data["keys"]:
        lines.append("  (none: the server has no signing passphrase)")
    return "\n".join(lines)


@click.group()
def key() -> None:
    """Release keys: each namespace signs its releases with its own ECDSA P-256 key."""


@key.command("list")
@server_options
@click.argument("namespace")
def key_list(url: str, user: str | None, password: str | None, as_json: bool,
             namespace: str) -> None:
    """The release keys of NAMESPACE (current first, then retired)."""
    emit(run_api(url, user, password, lambda c: c.keys(namespace)), as_json, _keys_text)


@key.command("show")
@server_options
@click.argument("namespace")
@click.argument("key_id", required=False)
def key_show(url: str, user: str | None, password: str | None, as_json: bool, namespace: str,
             key_id: str | None) -> None:
    """A public key of NAMESPACE as PEM (the current one, or the one KEY_ID starts)."""
    data = run_api(url, user, password, lambda c: c.keys(namespace))
    found = [k for k in data["keys"] if key_id is None or k["key_id"].startswith(key_id)]
    if not found:
        fail(f"no key {key_id or ''} of namespace {namespace}".replace("  ", " "))
    emit(found[0], as_json, lambda k: str(k["public_key"]).rstrip("\n"))


@key.command("rotate")
@server_options
@click.argument("namespace")
def key_rotate(url: str, user: str | None, password: str | None, as_json: bool,
               namespace: str) -> None:
    """Give NAMESPACE a new release key; the old one is retired but stays published."""
    data = run_api(url, user, password, lambda c: c.rotate_key(namespace))
    emit(data, as_json, lambda d: f"new release key {d['keys'][0]['key_id'][:16]} of "
         f"{namespace}; retired keys stay published\n" + _keys_text(d))


@click.group()
def trust() -> None:
    """Client configuration that requires strata's release signatures."""


@trust.command("config")
@server_options
@click.argument("namespace")
@click.option("--host", default=None, metavar="HOST[:PORT]",
              help="The registry host clients pull from (default: the one strata signs for).")
@click.option("--policy-only", is_flag=True, help="Print only policy.json.")
@click.option("--registries-d-only", is_flag=True, help="Print only the registries.d YAML.")
def trust_config(url: str, user: str | None, password: str | None, as_json: bool,
                 namespace: str, host: str | None, policy_only: bool,
                 registries_d_only: bool) -> None:
    """Print the policy.json and registries.d snippet that make podman/skopeo require
    NAMESPACE's release signatures."""
    async def fetch(c: ApiClient) -> tuple[Any, list[str]]:
        data = await c.keys(namespace)
        if host is None or host == data["registry"]:
            return data, []
        images = await c.images(namespace)
        return data, sorted(str(i["repository"]) for i in images["images"])
    data, repositories = run_api(url, user, password, fetch)
    if not data["keys"]:
        fail(f"namespace {namespace} has no release key yet (the server signs once it has a "
             "signing passphrase)")
    config = client_config(data, host, repositories)
    policy_text = json.dumps(config["policy"], indent=2)
    if policy_only:
        click.echo(policy_text)
        return
    if registries_d_only:
        click.echo(config["registries_d"], nl=False)
        return
    if as_json:
        emit(config, True, str)
        return
    click.echo(f"# /etc/containers/policy.json (or --policy FILE): require {namespace}'s "
               f"release signatures for {config['host']}/{namespace}/*\n"
               f"# (merge the \"transports\" entry into an existing policy)")
    click.echo(policy_text)
    click.echo(f"\n# /etc/containers/registries.d/strata-{namespace}.yaml (or "
               "--registries.d DIR): fetch sigstore signatures")
    click.echo(config["registries_d"], nl=False)
