"""The build runner and the rebuild loop: a ``rebuild`` job builds with ``if_changed`` and ends
``dropped`` when the registration finds it unchanged; a ``build`` job forces nothing of the
kind (clone and build replaced by fakes: the runner's own decisions only)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from strata.build import publish as publish_module
from strata.jobs import runner as runner_module
from strata.jobs.runner import BuildRunner, RunnerSettings
from strata.meta.build_store import BuildStore
from strata.meta.connection import sqlite_url
from strata.meta.database import Database

BASE = {"reference": "127.0.0.1:5000/f25:25", "digest": "sha256:" + "b" * 64}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[BuildStore]:
    db = Database(sqlite_url(tmp_path))
    db.migrate()
    yield BuildStore(db)
    db.close()


async def run(store: BuildStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str,
              answer: dict[str, Any]) -> tuple[Any, list[dict[str, Any]]]:
    calls: list[dict[str, Any]] = []

    async def clone(url: str, branch: str | None, dest: Path, **_: Any) -> tuple[str, int]:
        return "c" * 40, 1700000000

    async def build(registry: Any, spec: Any, opts: Any, **kw: Any) -> dict[str, Any]:
        calls.append(kw)
        return answer

    monkeypatch.setattr(runner_module, "clone_source", clone)
    # the runner imports the builder when it runs its first job (issue #18): patched there
    monkeypatch.setattr(publish_module, "run_build", build)

    async def no_token(account: str, repository: str, pull_from: tuple[str, ...]
                       ) -> str | None:
        return None

    async def no_source(repository: str) -> tuple[str | None, str | None] | None:
        return None

    settings = RunnerSettings(registry_url="http://127.0.0.1:1", work_dir=tmp_path / "work",
                              cache_dir=tmp_path / "cache", source_allow=("https://",),
                              worker_id="w1")
    runner = BuildRunner(store, settings, credentials=no_token, sources=no_source)
    job_id = await store.enqueue("f25/cockpit", kind=kind, requested_by="rebuild-loop",
                                 rebuild=True, source_url="https://git.example/c.git",
                                 source_branch="f25")
    job = await store.claim("w1")
    assert job is not None and job.id == job_id
    await runner.run_job(job)
    return await store.job(job_id), calls


async def test_an_unchanged_rebuild_job_ends_dropped(store: BuildStore, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    same = {"nvr": "cockpit-130-1.f25docker", "digest": "sha256:" + "1" * 64,
            "status": "released"}
    job, calls = await run(store, tmp_path, monkeypatch, "rebuild", {
        "dropped": True, "unchanged": same, "nvr": same["nvr"], "digest": same["digest"],
        "base": BASE, "packages_digest": "sha256:" + "2" * 64})
    assert calls[0]["if_changed"] is True and calls[0]["rebuild"] is True
    assert job.state == "dropped" and job.error is None
    assert job.result_nvr == same["nvr"]  # the build it repeats
    log, _ = await store.log(job.id) or ("", "")
    assert "dropped: unchanged" in log


async def test_a_changed_rebuild_and_a_plain_build_succeed(
        store: BuildStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    built = {"dropped": False, "nvr": "cockpit-130-2.f25docker", "digest": "sha256:" + "3" * 64,
             "base": BASE, "packages_digest": "sha256:" + "4" * 64}
    job, calls = await run(store, tmp_path, monkeypatch, "rebuild", built)
    assert job.state == "succeeded" and calls[0]["if_changed"] is True
    assert (job.base_repository, job.base_tag) == ("f25", "25")
    job, calls = await run(store, tmp_path / "2", monkeypatch, "build", built)
    assert job.state == "succeeded" and calls[0]["if_changed"] is False
