"""The registry's write policy for managed repositories (ReleaseTagPolicy)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from strata.errors import Code, RegistryError
from strata.meta import release_tables as rt
from strata.meta.engine import create_engine, migrate, sqlite_url
from strata.meta.records import ManifestRecord, TagCheck
from strata.meta.store import SqlMetaStore
from strata.oci.mediatypes import OCI_INDEX
from strata.release.model import is_cosign_tag
from strata.release.policy import ReleaseTagPolicy

A, B = "sha256:" + "a" * 64, "sha256:" + "b" * 64


@pytest.fixture
def policy() -> ReleaseTagPolicy:
    return ReleaseTagPolicy()


def denied(policy: ReleaseTagPolicy, tag: str, current: str | None,
           new: str | None) -> RegistryError:
    with pytest.raises(RegistryError) as err:
        policy.check_sync("f25/x", tag, current, new, True)
    assert err.value.code is Code.DENIED
    return err.value


def test_nvr_tags_are_created_once_and_never_moved_or_deleted(policy: ReleaseTagPolicy) -> None:
    policy.check_sync("f25/x", "130-1.f25docker", None, A, True)
    policy.check_sync("f25/x", "130-1.f25docker", A, A, True)  # re-push: no-op
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
        policy.check_sync("f25/x", tag, A, A, True)


def test_cosign_tags_are_exempt(policy: ReleaseTagPolicy) -> None:
    for suffix in ("", ".sig", ".att", ".sbom"):
        tag = "sha256-" + "c" * 64 + suffix
        assert is_cosign_tag(tag)
        policy.check_sync("f25/x", tag, A, B, True)
        policy.check_sync("f25/x", tag, A, None, True)
    assert not is_cosign_tag("sha256-" + "c" * 63 + ".sig")
    assert not is_cosign_tag("sha256-" + "c" * 64 + ".exe")
    denied(policy, "sha256-" + "c" * 64 + ".exe", A, B)


def test_unmanaged_repositories_accept_anything(policy: ReleaseTagPolicy) -> None:
    policy.check_sync("fedora", "latest", A, B, False)
    policy.check_sync("f25/other", "130-1", A, None, False)
    with pytest.raises(RegistryError):
        policy.check_sync("f25/other", "130-1", A, None, True)


def _record(digest: str) -> ManifestRecord:
    return ManifestRecord(repository="f25/x", digest=digest, media_type=OCI_INDEX, size=2,
                          content=b"{}", artifact_type=None, subject=None)


async def test_managed_is_read_in_the_writing_transaction(tmp_path: Path) -> None:
    """No cache between registering an image and the next tag write: the store asks the
    database inside the transaction that writes the tag."""
    engine = create_engine(sqlite_url(tmp_path))
    migrate(engine)
    store = SqlMetaStore(engine)
    seen: list[tuple[str, str | None, bool]] = []

    def checker(new: str) -> TagCheck:
        def check(tag: str, current: str | None, managed: bool) -> None:
            seen.append((tag, current, managed))
            ReleaseTagPolicy().check_sync("f25/x", tag, current, new, managed)
        return check

    await store.put_manifest(_record(A), [], ["latest"], check_tag=checker(A))
    with engine.begin() as conn:
        conn.execute(sa.insert(rt.namespaces).values(name="f25", dist_tag="", interval_days=14,
                                                     anchor="2025-06-10", created_at=0.0))
        conn.execute(sa.insert(rt.images).values(repository="f25/x", namespace="f25", name="x",
                                                 status="active", created_at=0.0))
    with pytest.raises(RegistryError) as err:
        await store.put_manifest(_record(B), [], ["latest"], check_tag=checker(B))
    assert err.value.code is Code.DENIED
    assert seen == [("latest", None, False), ("latest", A, True)]
    assert (await store.resolve_tag("f25/x", "latest")).digest == A  # type: ignore[union-attr]
    engine.dispose()
