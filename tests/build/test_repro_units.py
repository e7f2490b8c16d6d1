"""Pure parts of issue 11's build side: timestamps set (not clamped), git modes, what
``--verify`` reports, explicit release labels and the lookup of a reusable build."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest

from strata.build.compare import config_differences, layer_differences
from strata.build.fsview import MergedView
from strata.build.labels import ReleaseRefused, explicit_release, used_numbers
from strata.build.layers import LayerWriter, stamp_tree
from strata.build.record import RECORD_ARTIFACT_TYPE
from strata.build.reuse import find_reusable
from strata.build.transfer import ContextItem, transfer_entries
from strata.client.registry import ClientError
from strata.image.layer import TarEntry, data_entry, dir_entry, symlink_entry, write_layer

SDE = 1_000_000


def test_layer_writer_sets_every_timestamp(tmp_path: Path) -> None:
    writer = LayerWriter(tmp_path / "work", sde=SDE)
    try:
        slot = writer.entry_slot([dir_entry("a", mtime=5),
                                  data_entry("a/f", b"x", mtime=SDE + 99)])
        blob = slot.result()
        assert blob is not None
        assert {n.mtime for n in (slot.fs.node("a"), slot.fs.node("a/f")) if n} == {SDE}
        upper = tmp_path / "upper"
        (upper / "d").mkdir(parents=True)
        (upper / "d" / "f").write_text("y")
        (upper / "l").symlink_to("/nowhere")
        os.utime(upper / "d" / "f", (3, 3))
        stamp_tree(upper, SDE)
        stamps = {os.lstat(p).st_mtime for p in (upper, upper / "d", upper / "d" / "f",
                                                 upper / "l")}
        assert stamps == {SDE}
    finally:
        writer.close()


def test_git_checkouts_copy_with_the_modes_git_records(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    (ctx / "d").mkdir(parents=True)
    (ctx / "d" / "plain").write_text("p")
    (ctx / "d" / "tool").write_text("t")
    os.chmod(ctx / "d", 0o775)
    os.chmod(ctx / "d" / "plain", 0o664)
    os.chmod(ctx / "d" / "tool", 0o775)

    def modes(git_modes: bool, chmod: int | None = None) -> dict[str, int]:
        entries = transfer_entries([ContextItem(ctx / "d", "d")], "/d/", workdir="/",
                                   view=MergedView([]), sde=SDE, owner=None, chmod=chmod,
                                   ignore=None, line=1, git_modes=git_modes)
        return {e.path: e.mode for e in entries}

    assert modes(True) == {"d": 0o755, "d/plain": 0o644, "d/tool": 0o755}
    assert modes(False) == {"d": 0o755, "d/plain": 0o664, "d/tool": 0o775}
    assert modes(True, chmod=0o600)["d/plain"] == 0o600  # --chmod still wins


def _layer(path: Path, entries: list[TarEntry]) -> Path:
    write_layer(entries, path, compression="gzip", level=1)
    return path


def test_layer_differences_say_what_differs(tmp_path: Path) -> None:
    same = data_entry("same", b"s", mtime=1)
    first = _layer(tmp_path / "a", [
        dir_entry("d", mtime=1), data_entry("d/content", b"one", mtime=1),
        data_entry("d/mode", b"m", mtime=1, mode=0o644),
        data_entry("d/owner", b"o", mtime=1), data_entry("d/time", b"t", mtime=1),
        TarEntry("d/xattr", "file", 0o644, mtime=1, xattrs=(("user.k", b"1"),)),
        data_entry("d/kind", b"", mtime=1), data_entry("gone", b"g", mtime=1), same])
    second = _layer(tmp_path / "b", [
        dir_entry("d", mtime=1), data_entry("d/content", b"two", mtime=1),
        data_entry("d/mode", b"m", mtime=1, mode=0o600),
        data_entry("d/owner", b"o", mtime=1, uid=1000, gid=50),
        data_entry("d/time", b"t", mtime=2),
        TarEntry("d/xattr", "file", 0o644, mtime=1, xattrs=(("user.k", b"2"),)),
        symlink_entry("d/kind", "elsewhere", mtime=1), data_entry("new", b"n", mtime=1), same])
    lines = layer_differences(first, second)
    by_path = {line.split(":", 1)[0]: line.split(": ", 1)[1] for line in lines}
    assert set(by_path) == {"/d/content", "/d/mode", "/d/owner", "/d/time", "/d/xattr",
                            "/d/kind", "/gone", "/new"}
    assert by_path["/d/content"].startswith("content sha256:")
    assert by_path["/d/mode"] == "mode 0644 != 0600"
    assert by_path["/d/owner"] == "owner 0:0 != 1000:50"
    assert by_path["/d/time"] == "mtime 1 != 2"
    assert by_path["/d/xattr"].startswith("xattrs ")
    assert by_path["/d/kind"] == "type file != symlink"
    assert by_path["/gone"] == "only in the first build"
    assert by_path["/new"] == "only in the second build"


def test_config_differences() -> None:
    a = json.dumps({"created": "x", "config": {"Env": ["A=1"], "User": "u"},
                    "rootfs": {"diff_ids": ["1"]}}).encode()
    b = json.dumps({"created": "y", "config": {"Env": ["A=2"], "User": "u"},
                    "rootfs": {"diff_ids": ["2"]}}).encode()
    assert config_differences(a, b) == ['config.Env: ["A=1"] != ["A=2"]', "created differs"]


def test_explicit_release() -> None:
    used = used_numbers("1.0", "f25docker", ["1.0-1.f25docker", "1.0-3.f25docker"],
                        ["4.f25docker", "9.other"])
    assert used == [1, 3, 4]
    assert explicit_release("5", "1.0", "f25docker", used) == "5.f25docker"
    assert explicit_release("12.f25docker", "1.0", "f25docker", used) == "12.f25docker"
    assert explicit_release("2", "1.0", "", []) == "2"
    with pytest.raises(ReleaseRefused, match=r"numbers taken: 1, 3, 4; the next free one is 5"):
        explicit_release("2", "1.0", "f25docker", used)
    with pytest.raises(ReleaseRefused, match="numbers taken: 1, 3, 4"):
        explicit_release("4", "1.0", "f25docker", used)
    for bad in ("x", "5.other", "-1", "0", "1.2"):
        with pytest.raises(ReleaseRefused, match="give a release number"):
            explicit_release(bad, "1.0", "f25docker", used)


class FakeRegistry:
    """Referrers, manifests and blobs of build records, as the registry answers them."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = {}
        self.missing: set[str] = set()

    async def referrers(self, repo: str, digest: str, artifact_type: str | None = None
                        ) -> dict[str, Any]:
        if digest not in self.records:
            return {"manifests": []}
        return {"manifests": [{"artifactType": RECORD_ARTIFACT_TYPE,
                               "digest": f"record-of-{digest}"}]}

    async def get_manifest(self, repo: str, reference: str) -> Any:
        digest = reference.removeprefix("record-of-")

        class Manifest:
            @staticmethod
            def json() -> dict[str, Any]:
                return {"layers": [{"digest": f"blob-of-{digest}"}]}
        return Manifest()

    async def get_blob(self, repo: str, digest: str) -> bytes:
        return json.dumps(self.records[digest.removeprefix("blob-of-")]).encode()

    async def head_manifest(self, repo: str, reference: str) -> str | None:
        if reference in self.missing:
            return None
        if reference == "broken":
            raise ClientError(500, None, "boom")
        return reference


def test_find_reusable_matches_every_input() -> None:
    inputs = {"commit": "c1", "images": {"base:1": "sha256:b1"}, "build_args": {}}
    registry = FakeRegistry()
    builds = []
    for release, digest, record_inputs in [
            ("1.t", "d1", inputs),
            ("2.t", "d2", {**inputs, "images": {"base:1": "sha256:OTHER"}}),  # base moved
            ("3.t", "d3", {**inputs, "build_args": {"X": "1"}}),
            ("4.t", "d4", None)]:
        registry.records[digest] = {"inputs": record_inputs, "image": {"digest": digest}}
        builds.append({"digest": digest, "release": release, "version": "1",
                       "status": "candidate", "created_at": "2026-01-01T00:00:00Z"})

    def find(candidates: list[dict[str, Any]]) -> str | None:
        found = asyncio.run(find_reusable(registry, "ns/x", "1", candidates,  # type: ignore[arg-type]
                                          inputs))
        return None if found is None else str(found.build["digest"])

    assert find(builds) == "d1"
    registry.records["d5"] = {"inputs": inputs, "image": {"digest": "d5"}}
    newer = {**builds[0], "digest": "d5", "release": "10.t"}
    assert find([*builds, newer]) == "d5"  # the highest release, not the list order
    assert find([*builds, {**newer, "status": "withdrawn"}]) == "d1"
    assert find([*builds, {**newer, "version": "2"}]) == "d1"
    registry.missing.add("d5")
    assert find([*builds, newer]) == "d1"  # its manifest is gone
    assert find(builds[1:]) is None
