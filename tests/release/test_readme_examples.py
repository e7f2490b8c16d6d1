"""README.md's command examples of "Release streams" and "Builds" run as written against a
real ``strata serve``, in order, each expected to exit 0.

What the test provides (the README's examples assume it) and substitutes:

* every line of the sections' ``sh`` blocks is one command; ``#`` starts a comment; ``strata``
  is this environment's ``strata`` (``$STRATA_URL``, ``$STRATA_USER``/``$STRATA_PASSWORD``:
  the server's admin);
* ``REPO@sha256:…`` is the next digest of REPO: the test pushes two builds of
  ``f25/cockpit`` by digest first (``130-1.f25docker``, then ``130-2.f25docker``), and a
  ``--json`` command that prints a ``repository`` and a ``digest`` adds that digest;
* the working directory holds ``rootfs.tar`` (a small root filesystem) and ``./cockpit`` (a
  Containerfile ``FROM f25:25`` with the label policy's labels, version 130);
  ``https://git.example/cockpit.git`` is a local git repository of the same source with a
  branch ``f25``;
* a ``# {…}`` comment after a ``--json`` command is the output's shape: each key is there,
  with that value unless it is ``…`` (an ``nvr`` is checked up to its release number, which
  depends on what was built before);
* the server's scheduler is off (``STRATA_SCHEDULER_INTERVAL=0``), so that the publish the
  README shows is the one that publishes ``f25-2026-11-28`` (a running server publishes an
  overdue release by itself).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import subprocess
import tarfile
import textwrap
import warnings
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from strata.client.registry import RegistryClient
from support.server import StrataServer, strata_command

from .helpers import make_image

pytestmark = [pytest.mark.server]

README = Path(__file__).resolve().parents[2] / "README.md"
SECTIONS = ("## Release streams", "## Builds")
ELLIPSIS = "…"
GIT_URL = "https://git.example/cockpit.git"


def examples(text: str, heading: str) -> list[str]:
    """The command lines of the ``sh`` blocks under ``heading`` (up to the next ``## ``)."""
    start = text.index(f"\n{heading}\n")
    end = text.find("\n## ", start + 1)
    section = text[start:end if end != -1 else len(text)]
    lines: list[str] = []
    for block in re.findall(r"```sh\n(.*?)```", section, flags=re.S):
        lines += [line for line in block.splitlines() if line.strip()]
    return lines


def test_readme_sections_have_examples() -> None:
    text = README.read_text(encoding="utf-8")
    for heading in SECTIONS:
        commands = examples(text, heading)
        assert commands and all(line.startswith("strata ") for line in commands), heading


def split_comment(line: str) -> tuple[list[str], str | None]:
    """(argv, the comment after the command or None)."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=False)
    lexer.whitespace_split = True
    lexer.commenters = ""
    words: list[str] = []
    comment = None
    for word in lexer:
        if word.startswith("#") and comment is None:
            comment = line[line.index(" #") + 2:].strip() if " #" in line else word[1:]
            break
        words.append(word)
    return words, comment


def shape(comment: str | None) -> dict[str, Any] | None:
    """The JSON object a comment shows (``…`` as null), if it starts with one."""
    if comment is None or not comment.startswith("{"):
        return None
    text = comment[:comment.rindex("}") + 1].replace(ELLIPSIS, "null")
    value: dict[str, Any] = json.loads(text)
    return value


def check_shape(expected: dict[str, Any], got: dict[str, Any], line: str) -> None:
    for key, value in expected.items():
        assert key in got, (line, key, got)
        if value is None:
            continue
        if key == "nvr":
            assert got[key].rsplit("-", 1)[0] == value.rsplit("-", 1)[0], (line, got[key])
        else:
            assert got[key] == value, (line, key, got[key])


def make_rootfs(path: Path) -> None:
    root = path.parent / "rootfs-tree"
    for sub in ("bin", "etc", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "etc" / "os-release").write_text('NAME="strata test base"\nVERSION_ID=25\n')
    with tarfile.open(path, "w") as tf:
        tf.add(root, arcname=".")


def write_source(root: Path) -> None:
    root.mkdir(parents=True)
    (root / "Containerfile").write_text(textwrap.dedent("""\
        FROM f25:25
        LABEL name="$FGC/cockpit" version="130" summary="cockpit for the README test" \\
              maintainer="README <readme@example.com>" usage="podman run f25/cockpit"
        COPY motd /etc/motd
        """))
    (root / "motd").write_text("hello from the README\n")


def git_repo(source: Path, dest: Path) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@x",
           "GIT_AUTHOR_DATE": "2026-11-20T00:00:00Z",
           "GIT_COMMITTER_DATE": "2026-11-20T00:00:00Z"}
    work = dest.parent / "cockpit-work"
    subprocess.run(["cp", "-r", str(source), str(work)], check=True)
    for args in (["init", "-q", "-b", "f25"], ["add", "."], ["commit", "-q", "-m", "cockpit"]):
        subprocess.run(["git", "-C", str(work), *args], check=True, env=env,
                       capture_output=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(dest)], check=True,
                   capture_output=True)
    return f"file://{dest}"


async def push_builds(server: StrataServer) -> list[str]:
    """f25/cockpit 130-1 and 130-2, pushed by digest."""
    with warnings.catch_warnings():  # what RegistryClient takes for the token endpoint
        warnings.simplefilter("ignore", DeprecationWarning)
        auth = aiohttp.BasicAuth(server.admin_user, server.admin_password)
    async with aiohttp.ClientSession() as session:
        client = RegistryClient(server.url, session, auth=auth)
        digests = []
        for release in ("1.f25docker", "2.f25docker"):
            image = make_image("cockpit", "130", release)
            digests.append(await client.push_image("f25/cockpit", None, [image.layer],
                                                   image.config))
        return digests


def test_readme_examples_run_as_written(tmp_path: Path) -> None:
    text = README.read_text(encoding="utf-8")
    lines = [line for heading in SECTIONS for line in examples(text, heading)]
    cwd = tmp_path / "work"
    cwd.mkdir()
    make_rootfs(cwd / "rootfs.tar")
    write_source(cwd / "cockpit")
    git_url = git_repo(cwd / "cockpit", tmp_path / "cockpit.git")
    with StrataServer(tmp_path / "server", env={"STRATA_SCHEDULER_INTERVAL": "0"}) as server:
        digests: dict[str, list[str]] = {"f25/cockpit": asyncio.run(push_builds(server))}
        env = {**os.environ, "STRATA_URL": server.url, "STRATA_USER": server.admin_user,
               "STRATA_PASSWORD": server.admin_password,
               "STRATA_BUILD_CACHE": str(tmp_path / "cache")}
        for line in lines:
            argv, comment = split_comment(line)
            assert argv[0] == "strata", line
            args = []
            for word in argv[1:]:
                if word == GIT_URL:
                    word = git_url
                repo, sep, digest = word.partition("@")
                if sep and digest == f"sha256:{ELLIPSIS}":
                    assert digests.get(repo), (line, f"no digest of {repo} to use")
                    word = f"{repo}@{digests[repo].pop(0)}"
                args.append(word)
            proc = subprocess.run([*strata_command(), *args], cwd=cwd, env=env, text=True,
                                  capture_output=True, timeout=240, check=False)
            assert proc.returncode == 0, (line, args, proc.stdout, proc.stderr[-3000:])
            if "--json" in args:
                out = json.loads(proc.stdout)
                expected = shape(comment)
                if expected is not None:
                    check_shape(expected, out, line)
                if isinstance(out, dict) and "repository" in out and "digest" in out:
                    digests.setdefault(out["repository"], []).append(out["digest"])
        # what the examples did, seen from outside
        shown = subprocess.run([*strata_command(), "release", "show", "2026-11-28", "--json"],
                               env=env, text=True, capture_output=True, check=True)
        assert json.loads(shown.stdout)["name"] == "f25-2026-11-28"
        tags = subprocess.run([*strata_command(), "tags", "f25", "--json"], env=env,
                              text=True, capture_output=True, check=True)
        assert {"25", "25-1.f25docker", "latest"} <= set(json.loads(tags.stdout)["tags"])
