"""Where a build's RUN directories go (:mod:`strata.build.scratch`): RAM up to a budget, then
the work directory; stale RAM directories of dead builders swept; a RUN that filled RAM run
again on disk.  The unit tests use an ordinary directory as the "tmpfs" (the policy only reads
free space); the end-to-end test mounts a small real tmpfs (root)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from build_support import BASE, Strata, labels_block, write_context

from strata.build import scratch as scratch_mod
from strata.build.errors import BuildError
from strata.build.jail import JailLimits
from strata.build.scratch import Scratch
from support.tmpfs import mounted_tmpfs


def limits(ram: Path, budget: int = 1 << 30) -> JailLimits:
    return JailLimits(ram_scratch=budget, ram_scratch_dir=str(ram))


def test_places_in_ram_until_the_budget_is_spent(tmp_path: Path) -> None:
    ram, disk = tmp_path / "ram", tmp_path / "disk"
    ram.mkdir()
    disk.mkdir()
    scratch = Scratch(disk, limits(ram, budget=100 << 20))
    assert scratch.ram is not None and scratch.ram.parent == ram
    assert scratch.ram.name.startswith(f"strata-build-{os.getpid()}-")
    first = scratch.place("run1")
    assert first.parent == scratch.ram and scratch.in_ram(first)
    (first / "rw" / "upper").mkdir(parents=True)
    (first / "rw" / "upper" / "big").write_bytes(b"x" * (101 << 20))
    scratch.charge(first)
    assert scratch.used >= 101 << 20
    second = scratch.place("run2")  # the budget is spent: the disk from now on
    assert second == disk / "run2" and not scratch.in_ram(second)
    assert "in RAM" in scratch.describe()
    scratch.close()
    assert list(ram.iterdir()) == []  # nothing left in RAM


@pytest.mark.parametrize("budget", [0, 1 << 20])
def test_off_or_too_small_means_disk(tmp_path: Path, budget: int) -> None:
    scratch = Scratch(tmp_path, limits(tmp_path / "ram-not-used", budget=budget))
    assert scratch.ram is None
    assert scratch.place("run1") == tmp_path / "run1"
    assert scratch.describe() == f"RUN directories on disk ({tmp_path})"
    scratch.close()


def test_a_missing_scratch_dir_means_disk(tmp_path: Path) -> None:
    scratch = Scratch(tmp_path, limits(tmp_path / "no" / "such" / "dir"))
    assert scratch.ram is None and scratch.place("x") == tmp_path / "x"


def test_budget_is_at_most_half_the_free_space(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scratch_mod, "_free", lambda _path: 300 << 20)
    scratch = Scratch(tmp_path / "disk", limits(tmp_path, budget=4 << 30))
    assert scratch.budget == 150 << 20
    scratch.close()
    monkeypatch.setattr(scratch_mod, "_free", lambda _path: 100 << 20)  # half is < 64 MiB
    assert Scratch(tmp_path / "disk", limits(tmp_path)).ram is None


def test_a_nearly_full_tmpfs_sends_the_next_directory_to_disk(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scratch = Scratch(tmp_path / "disk", limits(tmp_path))
    assert scratch.ram is not None
    monkeypatch.setattr(scratch_mod, "_free", lambda _path: scratch_mod.LOW_FREE - 1)
    assert scratch.place("run1") == tmp_path / "disk" / "run1"
    scratch.close()


def test_dead_builders_directories_are_swept(tmp_path: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp_path / f"strata-build-{dead.pid}-abc"
    (stale / "run1").mkdir(parents=True)
    alive = tmp_path / "strata-build-1-abc"  # pid 1 is alive: not ours to remove
    alive.mkdir()
    other = tmp_path / "unrelated"
    other.mkdir()
    scratch = Scratch(tmp_path / "disk", limits(tmp_path))
    assert not stale.exists()
    assert alive.exists() and other.exists()
    scratch.close()


def test_ran_out_removes_the_step_and_spends_the_budget(tmp_path: Path) -> None:
    scratch = Scratch(tmp_path / "disk", limits(tmp_path))
    small = scratch.place("run1")
    (small / "rw" / "upper").mkdir(parents=True)
    (small / "rw" / "upper" / "f").write_text("a failing RUN that wrote little")
    assert not scratch.ran_out(small)  # an ordinary failure: not run again
    assert small.exists()
    big = scratch.place("run2")
    (big / "rw" / "upper").mkdir(parents=True)
    (big / "rw" / "upper" / "f").write_bytes(b"\1" * scratch_mod.SPILL_BYTES)
    assert scratch.ran_out(big)
    assert not big.exists()
    assert not scratch.in_ram(scratch.place("run3"))
    assert not scratch.ran_out(tmp_path / "disk" / "run3")  # on disk: nothing to retry
    scratch.close()


@pytest.mark.parametrize(("name", "value", "message"), [
    ("STRATA_BUILD_RAM_SCRATCH", "lots", "not a number"),
    ("STRATA_BUILD_RAM_SCRATCH", "-1g", "must be ≥ 0"),
    ("STRATA_BUILD_RAM_SCRATCH_DIR", "shm", "must be an absolute path"),
])
def test_settings_are_checked(name: str, value: str, message: str) -> None:
    with pytest.raises(BuildError, match=message):
        JailLimits.from_env({name: value})


def test_settings_parse() -> None:
    parsed = JailLimits.from_env({"STRATA_BUILD_RAM_SCRATCH": "512m",
                                  "STRATA_BUILD_RAM_SCRATCH_DIR": "/run/strata"})
    assert (parsed.ram_scratch, parsed.ram_scratch_dir) == (512 << 20, "/run/strata")
    assert JailLimits.from_env({"STRATA_BUILD_RAM_SCRATCH": "0"}).ram_scratch == 0
    assert JailLimits.from_env({}).ram_scratch == 2 << 30


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    with mounted_tmpfs(tmp_path / "shm", "size=200m", "run the build tests as root") as mount:
        yield mount


@pytest.mark.server
def test_a_run_that_fills_ram_is_run_again_on_disk(strata: Strata, base_image: dict[str, Any],
                                                  tmp_path: Path, small_tmpfs: Path) -> None:
    # a 200 MiB tmpfs: the build may keep 100 MiB there; the second RUN writes 250 MiB, runs
    # out of space in RAM (head fails), and is run again on disk, where it succeeds
    ctx = write_context(tmp_path, f"""
        FROM {BASE}:1.36
        {labels_block("spill")}
        RUN echo first-step-ran && echo small > /small
        RUN echo big-step-ran && head -c 262144000 /dev/zero > /big && echo big-step-done
        RUN ls -l /big /small
    """)
    result = strata("build", str(ctx), env={"STRATA_BUILD_RAM_SCRATCH_DIR": str(small_tmpfs)})
    assert result.exit_code == 0, result.stderr
    assert f"RUN directories in RAM ({small_tmpfs}, up to 100 MiB)" in result.stderr
    lines = result.stderr.splitlines()  # the output's lines (STEP lines show the command)
    assert lines.count("first-step-ran") == 1
    assert lines.count("big-step-ran") == 2  # in RAM, then again on disk
    assert lines.count("big-step-done") == 1
    # the tmpfs filled: the jail could not write its status there, or the RUN failed
    again = [line for line in lines if line.endswith("RAM scratch: running it again on disk")
             or line.endswith("its RAM scratch is full: running it again on disk")]
    assert len(again) == 1, result.stderr
    assert "262144000" in result.stderr  # the third step sees the whole file
    assert list(small_tmpfs.iterdir()) == []  # nothing left in RAM


@pytest.mark.server
def test_an_ordinary_failure_in_ram_is_not_run_again(strata: Strata, base_image: dict[str, Any],
                                                    tmp_path: Path, small_tmpfs: Path) -> None:
    ctx = write_context(tmp_path, f"""
        FROM {BASE}:1.36
        {labels_block("failing")}
        RUN echo the-step-ran && exit 5
    """)
    result = strata("build", str(ctx), env={"STRATA_BUILD_RAM_SCRATCH_DIR": str(small_tmpfs)})
    assert result.exit_code == 3
    assert result.stderr.splitlines().count("the-step-ran") == 1
    assert "RUN failed with exit code 5" in result.stderr
    assert list(small_tmpfs.iterdir()) == []
