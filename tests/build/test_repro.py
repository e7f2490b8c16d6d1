"""Issue 11, the build side: the same commit builds to the same image from any checkout,
``--verify`` says what differs, an unchanged build is reused (``--rebuild`` makes a new
one), ``LABEL release=`` is honoured or refused, the record says whether RUN had the
network, one ``/help.md`` layer, and a failing RUN has its own exit code."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from build_support import BASE, DIST_TAG, NAMESPACE, Strata, git, labels_block, write_context

pytestmark = pytest.mark.server

T1 = 1609459200  # 2021-01-01: the first commit
T2 = 1640995200  # 2022-01-01: the second commit, SOURCE_DATE_EPOCH of the build
GIT_USER = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@x"}


def commit(repo: Path, message: str, when: int) -> str:
    stamp = f"@{when} +0000"
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message,
        env={**GIT_USER, "GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp})
    return git(repo, "rev-parse", "HEAD")


def git_context(root: Path, name: str, extra: str = "") -> Path:
    """A git repository with two commits (T1, then T2) of a Containerfile that copies files
    and directories from the context and runs a step that writes an old timestamp."""
    repo = write_context(root, f"""
        FROM {BASE}:1.36
        {labels_block(name)}
        COPY app/ /opt/app/
        COPY run.sh /usr/local/bin/run.sh
        RUN touch -d @5 /opt/app/old && mkdir -p /var/made
        {extra}
    """, {"app/a.txt": "alpha\n", "app/sub/b.txt": "beta\n", "run.sh": "#!/bin/sh\necho\n",
          "help.md": f"# {name}\n"})
    (repo / "run.sh").chmod(0o755)
    git(repo, "init", "-q", "-b", "main")
    commit(repo, "one", T1)
    (repo / "help.md").write_text(f"# {name}\n\nsecond commit\n")
    commit(repo, "two", T2)
    return repo


def age(repo: Path, mtime: int, *, group_writable: bool = False) -> None:
    """Give every file of the working copy *mtime* (as a checkout made long ago has), and
    the modes a checkout with umask 002 gives."""
    for top, dirs, files in os.walk(repo):
        if ".git" in Path(top).parts:
            continue
        for entry in [*files, *dirs]:
            path = Path(top, entry)
            if group_writable and path.name != ".git":
                path.chmod(path.stat().st_mode | 0o020)
            os.utime(path, (mtime, mtime))


def content(strata: Strata, built: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """(layer digests, config without the release label) of a build."""
    manifest, config = strata.image(built["repository"], built["digest"])
    del config["config"]["Labels"]["release"]
    return [layer["digest"] for layer in manifest["layers"]], config


def record_of(strata: Strata, built: dict[str, Any]) -> dict[str, Any]:
    manifest = strata.get_json(f"/v2/{built['repository']}/manifests/{built['record']}")
    record: dict[str, Any] = json.loads(
        strata.get(f"/v2/{built['repository']}/blobs/{manifest['layers'][0]['digest']}"))
    return record


def candidates(strata: Strata, repo: str) -> list[dict[str, Any]]:
    body = strata.server.request("GET", f"/api/v1/candidates?repository={repo}&status=all",
                                 headers=strata.server.admin_headers).body
    found: list[dict[str, Any]] = json.loads(body)["candidates"]
    return found


def test_same_commit_same_image_from_any_checkout(strata: Strata, base_image: dict[str, Any],
                                                  tmp_path: Path) -> None:
    repo = git_context(tmp_path / "work", "anycheckout")
    age(repo, T1 - 1000, group_writable=True)  # older than SOURCE_DATE_EPOCH, mode 0664
    first = strata.build(repo)
    assert (first["release"], first["reused"]) == (f"1.{DIST_TAG}", False)
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    again = strata.build(clone, "--rebuild")  # a fresh checkout: files are new, umask 022
    assert again["release"] == f"2.{DIST_TAG}"
    assert content(strata, again) == content(strata, first)
    from_url = strata.build(f"file://{repo}", "--rebuild")
    assert content(strata, from_url) == content(strata, first)
    age(repo, T2 + 10**6)  # newer than SOURCE_DATE_EPOCH
    os.utime(repo / "app" / "a.txt", (12345, 12345))
    touched = strata.build(repo, "--rebuild", "--verify")
    assert touched["verified"] is True
    assert content(strata, touched) == content(strata, first)

    manifest, config = strata.image(first["repository"], first["digest"])
    assert config["created"] == "2022-01-01T00:00:00Z"
    for layer in manifest["layers"][1:]:  # every layer the build wrote, RUN's included
        members = strata.layer_members(first["repository"], layer["digest"], tmp_path)
        assert {m.mtime for m in members.values()} == {T2}, sorted(members)
    copied = strata.layer_members(first["repository"], manifest["layers"][1]["digest"],
                                  tmp_path)
    assert copied["opt/app/a.txt"].mode == 0o644 and copied["opt/app/sub"].mode == 0o755
    run = strata.layer_members(first["repository"], manifest["layers"][3]["digest"], tmp_path)
    assert run["opt/app/old"].mtime == T2  # touch -d @5 inside RUN: set, not clamped


def test_verify_lists_the_paths_that_differ(strata: Strata, base_image: dict[str, Any],
                                            tmp_path: Path) -> None:
    ctx = write_context(tmp_path, f"""
        FROM {BASE}:1.36
        {labels_block("noisy")}
        RUN mkdir /same && echo same > /same/file && head -c 32 /dev/urandom > /noise
    """, {"help.md": "noisy\n"})
    result = strata("build", str(ctx), "--verify")
    assert result.exit_code == 1
    err = result.stderr
    assert "not reproducible" in err and "layer 1: diff_id" in err
    paths = [line.strip() for line in err.splitlines() if line.startswith("    /")]
    assert len(paths) == 1 and paths[0].startswith("/noise: content sha256:"), err
    assert " != sha256:" in paths[0]  # only what differs: /same is identical
    assert "configs differ" not in err  # they differ only by the layer's diff_id


def test_verified_human_output(strata: Strata, base_image: dict[str, Any],
                               tmp_path: Path) -> None:
    ctx = write_context(tmp_path, f"FROM {BASE}:1.36\n{labels_block('human')}\n"
                        "RUN echo hi > /hi\n", {"help.md": "h\n"})
    result = strata("build", str(ctx), "--verify", "-q")
    assert result.exit_code == 0, result.output
    digest = result.stdout.split()[1]
    assert f"verified: two builds, same digest {digest}" in result.stdout
    plain = strata("build", str(ctx), "-q")
    assert plain.exit_code == 0 and "verified" not in plain.stdout


def test_an_unchanged_build_is_reused(strata: Strata, base_image: dict[str, Any],
                                      tmp_path: Path) -> None:
    repo = git_context(tmp_path / "src", "reuse")
    repository = f"{NAMESPACE}/reuse"
    first = strata.build(repo)
    second = strata.build(repo)
    assert second["reused"] is True and first["reused"] is False
    assert (second["nvr"], second["digest"], second["record"]) == (
        first["nvr"], first["digest"], first["record"])
    assert second["nvr"] == f"reuse-1-1.{DIST_TAG}"
    human = strata("build", str(repo), "-q")
    assert human.exit_code == 0
    assert human.stdout.startswith(f"reuse-1-1.{DIST_TAG} {first['digest']}")
    assert "reused: reuse-1-1." in human.stdout
    from_url = strata.build(f"file://{repo}", "--ref", "main")  # another checkout
    assert (from_url["reused"], from_url["digest"]) == (True, first["digest"])
    verified = strata.build(repo, "--verify")  # builds twice, compares with the existing
    assert (verified["reused"], verified["verified"], verified["digest"]) == (
        True, True, first["digest"])
    assert [c["nvr"] for c in candidates(strata, repository)] == [first["nvr"]]

    rebuilt = strata.build(repo, "--rebuild")
    assert (rebuilt["release"], rebuilt["reused"]) == (f"2.{DIST_TAG}", False)
    assert strata.build(repo)["digest"] == rebuilt["digest"]  # the newest is reused
    other_arg = strata.build(repo, "--build-arg", "X=1")
    assert (other_arg["release"], other_arg["reused"]) == (f"3.{DIST_TAG}", False)
    zstd = strata.build(repo, "--compression", "zstd")
    assert zstd["release"] == f"4.{DIST_TAG}"

    (repo / "run.sh").write_text("#!/bin/sh\necho changed\n")  # a dirty checkout
    dirty = strata.build(repo)
    assert (dirty["release"], dirty["reused"]) == (f"5.{DIST_TAG}", False)
    git(repo, "checkout", "-q", "--", "run.sh")
    (repo / "untracked.txt").write_text("not in the commit\n")
    untracked = strata.build(repo)
    assert (untracked["release"], untracked["reused"]) == (f"6.{DIST_TAG}", False)
    (repo / "untracked.txt").unlink()
    (repo / "help.md").write_text("# reuse\n\na third commit\n")
    commit(repo, "three", T2 + 100)
    changed = strata.build(repo)
    assert (changed["release"], changed["reused"]) == (f"7.{DIST_TAG}", False)
    assert len(candidates(strata, repository)) == 7

    record = record_of(strata, first)
    assert record["inputs"]["commit"] == first["source"]["commit"]
    assert record["inputs"]["images"] == {f"{BASE}:1.36": base_image["digest"]}


def test_explicit_release_label(strata: Strata, base_image: dict[str, Any],
                                tmp_path: Path) -> None:
    def build(release: str) -> Any:
        ctx = write_context(tmp_path / release.replace(".", "_"), f"""
            FROM {BASE}:1.36
            {labels_block("pinned")}
            LABEL release="{release}"
        """, {"help.md": "p\n"})
        return strata("build", str(ctx), "--json")

    first = build("5")
    assert first.exit_code == 0, first.output
    data = json.loads(first.stdout)
    assert (data["release"], data["nvr"]) == (f"5.{DIST_TAG}", f"pinned-1-5.{DIST_TAG}")
    _, config = strata.image(data["repository"], data["digest"])
    assert config["config"]["Labels"]["release"] == f"5.{DIST_TAG}"
    taken = build("5")
    assert taken.exit_code == 2
    assert "numbers taken: 5; the next free one is 6" in taken.stderr
    lower = build("3")
    assert lower.exit_code == 2 and "numbers taken: 5" in lower.stderr
    with_tag = build(f"7.{DIST_TAG}")
    assert with_tag.exit_code == 0, with_tag.output
    assert json.loads(with_tag.stdout)["release"] == f"7.{DIST_TAG}"
    for bad in ("abc", "8.otherdist", "0"):
        refused = build(bad)
        assert refused.exit_code == 2, bad
        assert f"label release={bad!r}: give a release number" in refused.stderr
    assert sorted(c["release"] for c in candidates(strata, f"{NAMESPACE}/pinned")) == [
        f"5.{DIST_TAG}", f"7.{DIST_TAG}"]
    assert "ignored" not in taken.stderr


def test_record_says_whether_run_had_the_network(strata: Strata, base_image: dict[str, Any],
                                                 tmp_path: Path) -> None:
    ctx = write_context(tmp_path, f"FROM {BASE}:1.36\n{labels_block('net')}\n"
                        "RUN ip link > /links\n", {"help.md": "n\n"})
    none = strata.build(ctx)
    host = strata.build(ctx, "--network", "host")
    offline, online = record_of(strata, none), record_of(strata, host)
    assert (offline["network"], online["network"]) == ("none", "host")
    assert [s.get("network") for s in offline["steps"]] == [None, "none"]
    assert [s.get("network") for s in online["steps"]] == [None, "host"]
    per_step = write_context(tmp_path / "step", f"FROM {BASE}:1.36\n{labels_block('net2')}\n"
                             "RUN --network=host true\n", {"help.md": "n\n"})
    assert record_of(strata, strata.build(per_step))["network"] == "host"


def test_copied_help_file_gets_no_second_layer(strata: Strata, base_image: dict[str, Any],
                                               tmp_path: Path) -> None:
    ctx = write_context(tmp_path, f"""
        FROM {BASE}:1.36
        {labels_block("helpful")}
        COPY help.md /help.md
        RUN echo x > /x
    """, {"help.md": "# helpful\n"})
    built = strata.build(ctx)
    manifest, config = strata.image(built["repository"], built["digest"])
    assert len(manifest["layers"]) == 3  # base, COPY help.md, RUN
    assert not any("strata: help file" in h["created_by"] for h in config["history"])
    helpdoc = strata.layer_members(built["repository"], manifest["layers"][1]["digest"],
                                   tmp_path)
    assert sorted(helpdoc) == ["help.md"]
    other = write_context(tmp_path / "other", f"FROM {BASE}:1.36\n{labels_block('helpless')}\n"
                          "COPY help.md /usr/share/doc/help.md\n", {"help.md": "# h\n"})
    manifest, config = strata.image(f"{NAMESPACE}/helpless", strata.build(other)["digest"])
    assert config["history"][-1]["created_by"] == "COPY help.md /help.md # strata: help file"
    assert len(manifest["layers"]) == 3
