"""``strata scrub``: a clean registry passes; a missing, truncated or altered blob and an
altered manifest are each reported (exit 1), and nothing is changed by looking."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from click.testing import CliRunner

from strata.cli.main import cli
from strata.meta.connection import create_engine, sqlite_url
from strata.oci.digest import Digest
from strata.storage.filesystem import FilesystemBlobStore

from .helpers import Client, push_manifest
from .oci_fixtures import image


def blob_file(store: FilesystemBlobStore, digest: Digest) -> Path:
    return Path(store.blob_path(digest))


async def scrub(data: Path, *args: str) -> tuple[int, dict[str, Any]]:
    # On a thread: the command runs its own event loop, as it does from a shell.
    result = await asyncio.to_thread(
        CliRunner().invoke, cli, ["scrub", "--data", str(data), "--json", *args])
    assert result.stdout, (result.stderr, result.exception)
    return result.exit_code, json.loads(result.stdout)


async def test_a_clean_registry_passes(client: Client, data_dir: Path) -> None:
    img = image()
    await push_manifest(client, "s/a", "v1", img)
    code, report = await scrub(data_dir)
    assert code == 0, report
    assert report["ok"] is True and report["problems"] == []
    assert report["blobs"] == len(img.blobs)
    assert report["blob_bytes"] == sum(len(b.data) for b in img.blobs)
    assert report["manifests"] == 1


async def test_damage_is_reported_blob_by_blob(client: Client, data_dir: Path) -> None:
    images = [image(f"scrub{i}") for i in range(3)]
    for i, img in enumerate(images):
        await push_manifest(client, f"s/{i}", "v1", img)
    store = FilesystemBlobStore(data_dir)
    gone, cut, flipped = (Digest.parse(img.blobs[-1].digest) for img in images)
    blob_file(store, gone).unlink()
    path = blob_file(store, cut)
    path.write_bytes(path.read_bytes()[:-1])
    path = blob_file(store, flipped)
    data = bytearray(path.read_bytes())
    data[0] ^= 1
    path.write_bytes(bytes(data))
    engine = create_engine(sqlite_url(data_dir))
    with engine.begin() as conn:  # bit rot in the database too
        conn.execute(sa.text("UPDATE manifests SET content = CAST(content || x'20' AS BLOB) "
                             "WHERE repository_id = (SELECT id FROM repositories "
                             "WHERE name = 's/2')"))
    engine.dispose()

    code, report = await scrub(data_dir)
    assert code == 1
    found = {(p["kind"], p["digest"], p["problem"]) for p in report["problems"]}
    assert found == {("blob", str(gone), "missing"), ("blob", str(cut), "size"),
                     ("blob", str(flipped), "digest"),
                     ("manifest", images[2].digest, "digest")}
    # --quick checks presence and size only: the flipped bit goes unseen.
    code, report = await scrub(data_dir, "--quick")
    assert code == 1
    found = {(p["kind"], p["digest"], p["problem"]) for p in report["problems"]}
    assert ("blob", str(flipped), "digest") not in found
    assert ("blob", str(gone), "missing") in found and ("blob", str(cut), "size") in found
    # Looking changed nothing: the undamaged blobs still serve.
    resp = await client.get(f"/v2/s/0/blobs/{images[0].blobs[0].digest}")
    assert resp.status == 200 and await resp.read() == images[0].blobs[0].data
