"""``strata verify <ref>``: signature, provenance, rebuild, digest (:mod:`strata.trust.verify`).

The reference is ``[HOST/]REPOSITORY[:TAG|@DIGEST]`` (the host, if given, must be that of
``--url``). The public keys are the namespace's published ones (``GET /keys/<ns>.pub``,
current and retired; the namespace is the repository's first component), or those of
``--key FILE`` (PEM, one or more). Exit status 0 when every step passes, 1 otherwise.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import click

from strata.cli.build_cmds import basic_auth, default_cache
from strata.cli.common import emit, fail, server_options
from strata.client.registry import ClientError, RegistryClient


def split_reference(reference: str, url: str) -> tuple[str, str]:
    """(repository, tag or digest) of ``reference``; a leading host must be ``url``'s."""
    rest = reference
    first, sep, remainder = reference.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        if first != urlsplit(url).netloc:
            raise click.UsageError(f"{reference!r} names host {first}, not --url's "
                                   f"{urlsplit(url).netloc} (give --url)")
        rest = remainder
    if "@" in rest:
        repo, _, ref = rest.partition("@")
        return repo, ref
    repo, sep, tag = rest.rpartition(":")
    if not sep or "/" in tag:
        return rest, "latest"
    return repo, tag


async def _keys(client: RegistryClient, namespace: str) -> str:
    async with await client.request("GET", f"/keys/{namespace}.pub") as resp:
        if resp.status != 200:
            raise ClientError(resp.status, None, f"GET /keys/{namespace}.pub: {resp.status} "
                              "(no published release key for this namespace?)")
        return await resp.text()


@click.command()
@server_options
@click.option("--key", "key_file", type=click.Path(exists=True, dir_okay=False,
                                                   path_type=Path), default=None,
              help="Verify with the public key(s) in this PEM file instead of the "
                   "namespace's published ones.")
@click.option("--cache-dir", type=click.Path(path_type=Path), envvar="STRATA_BUILD_CACHE",
              default=None, help="Base image cache (default $STRATA_BUILD_CACHE, else "
                                 "~/.cache/strata/build).")
@click.option("--work-dir", type=click.Path(path_type=Path), default=None,
              help="Where the rebuild's checkout and work directory go (default: $TMPDIR).")
@click.option("-q", "--quiet", is_flag=True, help="No build progress output.")
@click.argument("reference")
def verify(url: str, user: str | None, password: str | None, as_json: bool,
           key_file: Path | None, cache_dir: Path | None, work_dir: Path | None, quiet: bool,
           reference: str) -> None:
    """Verify a released image: its signature against the namespace's key, its signed
    provenance, a rebuild from the recorded source on the recorded base, and the digest.

    Prints one verdict line per step (PASS/FAIL and why); exits 1 if any step fails."""
    from strata.build.errors import BuildError
    from strata.trust.verify import Verifier, split_pems

    repo, ref = split_reference(reference, url)
    namespace = repo.split("/", 1)[0]

    def log(line: str) -> None:
        if not quiet and not as_json:
            click.echo(line, err=True)

    key_text = key_file.read_text() if key_file else None

    async def go() -> object:
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30)
        auth = basic_auth(user, password)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            client = RegistryClient(url, session, auth=auth)
            text = key_text if key_text is not None else await _keys(client, namespace)
            pems = split_pems(text)
            if not pems:
                raise ClientError(0, None, f"no PEM public key in "
                                  f"{key_file or f'/keys/{namespace}.pub'}")
            verifier = Verifier(client, url, pems, cache_dir=cache_dir or default_cache(),
                                work_dir=work_dir, log=log)
            return await verifier.verify(repo, ref)

    try:
        verdict = asyncio.run(go())
    except ClientError as exc:
        fail(str(exc))
    except aiohttp.ClientError as exc:
        fail(f"cannot reach {url}: {exc}")
    except BuildError as exc:
        fail(str(exc))
    from strata.trust.verify import Verdict

    assert isinstance(verdict, Verdict)
    emit(verdict.to_json(), as_json, lambda _: verdict.text())
    if not verdict.ok:
        sys.exit(1)
