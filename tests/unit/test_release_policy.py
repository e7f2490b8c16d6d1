"""The registry's write policy for managed repositories (ReleaseTagPolicy)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from strata.errors import Code, RegistryError
from strata.meta import schema as rt
from strata.meta import tagwrite
from strata.meta.connection import create_engine, migrate, sqlite_url
from strata.meta.database import Database
from strata.meta.records import HeldBy, ManifestRecord, TagCheck
from strata.meta.registry_store import RegistryStore
from strata.oci import mediatypes as mt
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


def test_no_stream_tag_is_written_through_v2(policy: ReleaseTagPolicy) -> None:
    """Every tag of the stream grammar, NVR included, is the release engine's (issue 11)."""
    for tag in ("130-1.f25docker", "130", "latest", "v2-rc1"):
        err = denied(policy, tag, None, A)
        assert "(rule stream-tags-release-only)" in err.message
        assert f"strata candidate add f25/x@{A}" in err.message
        assert err.detail == {"rule": "stream-tags-release-only", "repository": "f25/x",
                              "tag": tag}
        denied(policy, tag, A, B)
        assert "stream-tags-release-only" in denied(policy, tag, A, None).message
        policy.check_sync("f25/x", tag, A, A, True)  # re-push of the same digest: no write
        policy.check_sync("f25/x", tag, None, None, True)  # deleting nothing


def test_cosign_tags_are_exempt(policy: ReleaseTagPolicy) -> None:
    for suffix in ("", ".att", ".sbom"):
        tag = "sha256-" + "c" * 64 + suffix
        assert is_cosign_tag(tag)
        policy.check_sync("f25/x", tag, A, B, True)
        policy.check_sync("f25/x", tag, A, None, True)
    assert not is_cosign_tag("sha256-" + "c" * 63 + ".sig")
    assert not is_cosign_tag("sha256-" + "c" * 64 + ".exe")
    denied(policy, "sha256-" + "c" * 64 + ".exe", A, B)


def test_signatures_are_the_releases(policy: ReleaseTagPolicy) -> None:
    """Issue 16: ``sha256-<hex>.sig`` and pushed cosign signatures are written by a release."""
    tag = "sha256-" + "c" * 64 + ".sig"
    assert is_cosign_tag(tag)
    for current, new in ((None, B), (A, B), (A, None)):
        err = denied(policy, tag, current, new)
        assert err.detail == {"rule": "signature-release-only", "repository": "f25/x",
                              "tag": tag}
    policy.check_sync("f25/x", tag, A, A, True)  # re-push of the same digest: no write
    policy.check_sync("demo/x", tag, A, B, False)
    for artifact, layers in ((mt.COSIGN_SIGNATURE_ARTIFACT, ()),
                             (mt.OCI_CONFIG, (mt.OCI_LAYER_GZIP, mt.COSIGN_PAYLOAD))):
        with pytest.raises(RegistryError) as err_info:
            policy.check_manifest_sync("f25/x", artifact, layers, True)
        assert err_info.value.detail == {"rule": "signature-release-only",
                                         "repository": "f25/x"}
        policy.check_manifest_sync("demo/x", artifact, layers, False)
    policy.check_manifest_sync("f25/x", "application/spdx+json", (mt.OCI_LAYER_GZIP,), True)


def test_unmanaged_repositories_accept_anything(policy: ReleaseTagPolicy) -> None:
    policy.check_sync("demo/busybox", "latest", A, B, False)
    policy.check_sync("demo/busybox", "130-1", A, None, False)
    policy.check_delete_sync("demo/busybox", A, False, False,
                             [HeldBy(A, "candidate", "x-1-1", ("latest",))])
    with pytest.raises(RegistryError):
        policy.check_sync("f25/other", "130-1", A, None, True)


def test_content_of_pending_and_released_builds_is_not_deleted(policy: ReleaseTagPolicy) -> None:
    blob = "sha256:" + "f" * 64
    for status in ("candidate", "released"):
        with pytest.raises(RegistryError) as err:
            policy.check_delete_sync("f25/x", A, False, True, [HeldBy(A, status, "x-1-1", ())])
        assert err.value.code is Code.DENIED
        assert err.value.detail == {"rule": "build-protected", "repository": "f25/x",
                                    "manifest": A}
        with pytest.raises(RegistryError) as err:
            policy.check_delete_sync("f25/x", blob, True, True, [HeldBy(A, status, "x-1-1", ())])
        assert err.value.detail == {"rule": "build-protected", "repository": "f25/x",
                                    "blob": blob}
    policy.check_delete_sync("f25/x", A, False, True, [HeldBy(A, "withdrawn", "x-1-1", ())])
    policy.check_delete_sync("f25/x", blob, True, True, [HeldBy(A, None, None, ())])


def _record(digest: str) -> ManifestRecord:
    return ManifestRecord(repository="f25/x", digest=digest, media_type=OCI_INDEX, size=2,
                          content=b"{}", artifact_type=None, subject=None)


async def test_managed_is_read_in_the_writing_transaction(tmp_path: Path) -> None:
    """No cache between registering an image and the next tag write: the store asks the
    database inside the transaction that writes the tag."""
    engine = create_engine(sqlite_url(tmp_path))
    migrate(engine)
    store = RegistryStore(Database(engine))
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


async def test_a_registered_namespace_manages_every_name_under_it(tmp_path: Path) -> None:
    """``f25/newthing`` is managed before its image exists (no NVR minted before
    registration); the image row alone manages a root repository (``fedora``)."""
    engine = create_engine(sqlite_url(tmp_path))
    migrate(engine)
    names = ["f25/newthing", "f25", "f25/a/b", "f25x/y", "demo/f25", "fedora", "f_25/y",
             "fx25/y", "demo/busybox"]
    with engine.begin() as conn:
        for name in names:
            conn.execute(sa.insert(rt.repositories).values(name=name, created_at=0.0))
        for ns in ("f25", "f_25"):
            conn.execute(sa.insert(rt.namespaces).values(
                name=ns, dist_tag="", interval_days=14, anchor="2025-06-10", created_at=0.0))
        conn.execute(sa.insert(rt.images).values(repository="fedora", namespace="f25",
                                                 name="fedora", status="active",
                                                 created_at=0.0))
        ids = {name: conn.execute(sa.select(rt.repositories.c.id).where(
            rt.repositories.c.name == name)).scalar_one() for name in names}
        managed = {name for name in names if tagwrite.is_managed(conn, ids[name])}
    assert managed == {"f25/newthing", "f25", "f25/a/b", "fedora", "f_25/y"}
    engine.dispose()
