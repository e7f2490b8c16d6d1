"""The rebuild loop end to end with the ``strata`` CLI against a real server: ``strata build``
records its base and packages, an unchanged ``--if-changed`` rebuild is dropped, a base release
queues exactly the dependant rebuild and ``image list --stale`` shows it, the rebuild on the new
base is registered and its release notes name the base and package changes."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

from build_support import (
    BASE,
    BASE_VERSION,
    DIST_TAG,
    NAMESPACE,
    Strata,
    git,
    labels_block,
    make_rootfs,
    write_context,
)

STATUS = ("Package: busybox\nStatus: install ok installed\nVersion: {version}\n"
          "Architecture: amd64\n\nPackage: tzdata\nStatus: install ok installed\n"
          "Version: 2025a-1\nArchitecture: all\n")
WHEN = {"GIT_AUTHOR_DATE": "2025-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2025-01-01T00:00:00Z",
        "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}


def rootfs(dest: Path, busybox_version: str) -> Path:
    """The busybox root filesystem with a dpkg database naming ``busybox_version``."""
    make_rootfs(dest)
    root = dest / "rootfs"
    (root / "var" / "lib" / "dpkg").mkdir(parents=True, exist_ok=True)
    (root / "var" / "lib" / "dpkg" / "status").write_text(
        STATUS.format(version=busybox_version))
    tarball = dest / "rootfs-dpkg.tar.gz"
    with tarfile.open(tarball, "w:gz") as tf:
        tf.add(root, arcname=".")
    return tarball


def source(root: Path, name: str, base: str) -> Path:
    repo = write_context(root, f"""
        FROM {base}
        {labels_block(name)}
        COPY hello.txt /hello.txt
    """, {"help.md": "help\n", "hello.txt": f"{name}\n"})
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "one", env=WHEN)
    return repo


def ok(strata: Strata, *args: str) -> str:
    result = strata(*args)
    assert result.exit_code == 0, result.output
    return result.stdout


def oob(strata: Strata, reference: str) -> dict[str, Any]:
    data: dict[str, Any] = strata.json("release", "oob", reference, "--advisory", "RL-1",
                                       "--reason", "rebuild loop test")
    return data


def ours(images: list[dict[str, Any]]) -> list[str]:
    return sorted(i["repository"] for i in images if "/rl-" in i["repository"])


def test_base_release_stale_images_dropped_and_noted_rebuilds(
        strata: Strata, base_image: dict[str, Any], tmp_path: Path) -> None:
    base1 = strata.json("base", "import", str(rootfs(tmp_path / "b1", "1.36.1-1")),
                        "--name", "rl-base", "--version", "1", "--namespace", NAMESPACE)
    oob(strata, f"rl-base@{base1['digest']}")
    app = source(tmp_path / "app", "rl-app", "rl-base:1")
    other = source(tmp_path / "other", "rl-other", f"{BASE}:{BASE_VERSION}")
    for name in ("rl-app", "rl-other"):
        ok(strata, "image", "add", f"{NAMESPACE}/{name}", "--source-url",
           f"https://git.invalid/{name}.git", "--source-branch", DIST_TAG)
    first = strata.build(app)
    recorded = first["candidate"]["inputs"]
    assert recorded["base"] == {"repository": "rl-base", "tag": "1",
                                "digest": base1["digest"]}
    assert recorded["source"]["commit"] == git(app, "rev-parse", "HEAD")
    assert recorded["packages"] == 2 and first["packages_digest"] == recorded["packages_digest"]
    assert recorded["record"] == first["record"]  # the build record it pushed, named
    oob(strata, f"{NAMESPACE}/rl-app@{first['digest']}")
    second = strata.build(other)
    oob(strata, f"{NAMESPACE}/rl-other@{second['digest']}")

    # nothing moved: a rebuild is the same commit, base and packages -> dropped
    dropped = strata.build(app, "--if-changed")
    assert dropped["dropped"] is True and dropped["candidate"] is None
    assert dropped["unchanged"] == {"nvr": first["nvr"], "digest": first["digest"],
                                    "status": "released"}
    human = ok(strata, "build", str(app), "--if-changed", "-q")
    assert human.startswith(f"dropped: unchanged rebuild of {NAMESPACE}/rl-app")
    assert ours(strata.json("image", "list", "--stale")["images"]) == []

    # a new base release: exactly rl-app is stale and queued, not rl-other
    base2 = strata.json("base", "import", str(rootfs(tmp_path / "b2", "1.36.1-2")),
                        "--name", "rl-base", "--version", "1", "--namespace", NAMESPACE)
    released = oob(strata, f"rl-base@{base2['digest']}")
    stale = strata.json("image", "list", "--stale", "--namespace", NAMESPACE)["images"]
    assert ours(stale) == [f"{NAMESPACE}/rl-app"]
    text = ok(strata, "image", "list", "--stale", "--namespace", NAMESPACE)
    assert (f"{NAMESPACE}/rl-app\t{first['nvr']}\tbuilt on rl-base:1 "
            f"rl-base-1-1.{DIST_TAG}, now rl-base-1-2.{DIST_TAG}") in text
    jobs = strata.json("build", "list", "--namespace", NAMESPACE)["builds"]
    rebuilds = [j for j in jobs if j["kind"] == "rebuild" and "/rl-" in j["repository"]]
    assert [j["repository"] for j in rebuilds] == [f"{NAMESPACE}/rl-app"]
    assert released["name"] in (rebuilds[0]["reason"] or "")

    # the rebuild on the new base changed: a new release, and notes that say what changed
    rebuilt = strata.build(app, "--if-changed")
    assert rebuilt["dropped"] is False and rebuilt["release"] == f"2.{DIST_TAG}"
    assert ours(strata.json("image", "list", "--stale")["images"]) == []
    notes = oob(strata, f"{NAMESPACE}/rl-app@{rebuilt['digest']}")
    shown = ok(strata, "release", "show", notes["name"])
    assert (f"Base `rl-base:1`: rl-base-1-1.{DIST_TAG} → rl-base-1-2.{DIST_TAG}") in shown
    assert "busybox 1.36.1-1 → 1.36.1-2" in shown and "tzdata" not in shown
    [image] = notes["notes"]["images"]
    assert image["rebuild"]["base"]["new_digest"] == base2["digest"]

    # the namespace setting, through the CLI
    assert strata.json("namespace", "set", NAMESPACE, "--rebuild-days-before",
                       "3")["rebuild_days_before"] == 3
    assert "rebuilt 3 days before" in ok(strata, "namespace", "set", NAMESPACE,
                                         "--rebuild-days-before", "3")
    assert strata.json("namespace", "set", NAMESPACE, "--rebuild-days-before",
                       "none")["rebuild_days_before"] is None
    assert strata("namespace", "set", NAMESPACE, "--rebuild-days-before", "x").exit_code == 2
    assert json.loads(ok(strata, "namespace", "list", "--json"))["namespaces"]
