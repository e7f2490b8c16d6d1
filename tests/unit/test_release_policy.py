"""The registry's write policy for managed repositories (ReleaseTagPolicy)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from strata.errors import Code, RegistryError
from strata.meta import release_tables as rt
from strata.meta.engine import create_engine, migrate, sqlite_url
from strata.release.model import is_cosign_tag
from strata.release.policy import ReleaseTagPolicy

A, B = "sha256:" + "a" * 64, "sha256:" + "b" * 64


@pytest.fixture
def policy(tmp_path: Path) -> Iterator[ReleaseTagPolicy]:
    engine = create_engine(sqlite_url(tmp_path))
    migrate(engine)
    with engine.begin() as conn:
        conn.execute(sa.insert(rt.namespaces).values(name="f25", dist_tag="f25docker",
                                                     interval_days=14, anchor="2025-06-10",
                                                     created_at=0.0))
        conn.execute(sa.insert(rt.images).values(repository="f25/x", namespace="f25", name="x",
                                                 status="active", created_at=0.0))
    yield ReleaseTagPolicy(engine, unmanaged_ttl=0)
    engine.dispose()


def denied(policy: ReleaseTagPolicy, *args: str | None) -> RegistryError:
    with pytest.raises(RegistryError) as err:
        policy.check_sync("f25/x", *args)  # type: ignore[arg-type]
    assert err.value.code is Code.DENIED
    return err.value


def test_nvr_tags_are_created_once_and_never_moved_or_deleted(policy: ReleaseTagPolicy) -> None:
    policy.check_sync("f25/x", "130-1.f25docker", None, A)
    policy.check_sync("f25/x", "130-1.f25docker", A, A)  # re-push: no-op
    err = denied(policy, "130-1.f25docker", A, B)
    assert "immutable" in err.message and "(rule nvr-immutable)" in err.message
    assert err.detail == {"rule": "nvr-immutable", "repository": "f25/x",
                          "tag": "130-1.f25docker"}
    assert "rule nvr-no-delete" in denied(policy, "130-1.f25docker", A, None).message


def test_floating_tags_are_for_the_release_engine_only(policy: ReleaseTagPolicy) -> None:
    for tag in ("latest", "130"):
        assert "floating-release-engine-only" in denied(policy, tag, None, A).message
        denied(policy, tag, A, B)
        denied(policy, tag, A, None)
        policy.check_sync("f25/x", tag, A, A)


def test_cosign_tags_are_exempt(policy: ReleaseTagPolicy) -> None:
    for suffix in ("", ".sig", ".att", ".sbom"):
        tag = "sha256-" + "c" * 64 + suffix
        assert is_cosign_tag(tag)
        policy.check_sync("f25/x", tag, A, B)
        policy.check_sync("f25/x", tag, A, None)
    assert not is_cosign_tag("sha256-" + "c" * 63 + ".sig")
    assert not is_cosign_tag("sha256-" + "c" * 64 + ".exe")
    denied(policy, "sha256-" + "c" * 64 + ".exe", A, B)


def test_unmanaged_repositories_accept_anything(policy: ReleaseTagPolicy) -> None:
    policy.check_sync("fedora", "latest", A, B)
    policy.check_sync("f25/other", "130-1", A, None)


async def test_async_check(policy: ReleaseTagPolicy) -> None:
    await policy.check("f25/x", "130", None, None)
    with pytest.raises(RegistryError):
        await policy.check("f25/x", "130", None, A)


def test_unmanaged_answers_are_cached_briefly(tmp_path: Path) -> None:
    engine = create_engine(sqlite_url(tmp_path))
    migrate(engine)
    now = [100.0]
    policy = ReleaseTagPolicy(engine, unmanaged_ttl=1.0, clock=lambda: now[0])
    policy.check_sync("f25/x", "latest", None, A)  # not managed yet
    with engine.begin() as conn:
        conn.execute(sa.insert(rt.namespaces).values(name="f25", dist_tag="", interval_days=14,
                                                     anchor="2025-06-10", created_at=0.0))
        conn.execute(sa.insert(rt.images).values(repository="f25/x", namespace="f25", name="x",
                                                 status="active", created_at=0.0))
    policy.check_sync("f25/x", "latest", A, B)  # still the cached answer
    now[0] += 1.5
    with pytest.raises(RegistryError):
        policy.check_sync("f25/x", "latest", A, B)
    engine.dispose()
