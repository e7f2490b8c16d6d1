"""Which files a piece of code syncs: ``os.fsync``/``os.fdatasync`` patched to record the path
of each descriptor before syncing it for real."""

from __future__ import annotations

import os
from types import ModuleType

import pytest


def record_syncs(monkeypatch: pytest.MonkeyPatch, module: ModuleType,
                 call: str = "fsync") -> list[str]:
    """Patch ``module.os.<call>``; the list fills with the synced files' paths."""
    synced: list[str] = []
    real = getattr(os, call)

    def record(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(module.os, call, record)
    return synced
