"""The backup and restore procedure of docs/deploy.md, one node: the database backed up online
(SQLite's backup API, what ``sqlite3 strata.db .backup`` does) while the server runs, then
``blobs/`` and ``auth/`` copied; restored into a fresh data dir, ``strata scrub`` passes and a
server on it serves the same manifests and blobs, and the same accounts log in."""

from __future__ import annotations

import base64
import json
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from release.helpers import make_image, sha256
from support.server import StrataServer, strata_command

pytestmark = pytest.mark.server

ADMIN_PASSWORD = "the-admin-password-of-the-backup"
ALICE_PASSWORD = "alice-password-1234"


def push_image(server: StrataServer, repo: str, version: str) -> tuple[str, bytes, bytes]:
    image = make_image(repo.split("/")[1], version, f"1.{repo.split('/')[0]}docker")
    for blob in (image.layer, image.config):
        resp = server.request("POST", f"/v2/{repo}/blobs/uploads/?digest={sha256(blob)}",
                              body=blob, headers={**server.admin_headers,
                                                  "Content-Type": "application/octet-stream"})
        assert resp.status == 201, resp.body
    resp = server.request("PUT", f"/v2/{repo}/manifests/{version}", body=image.manifest,
                          headers={**server.admin_headers,
                                   "Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    assert resp.status == 201, resp.body
    return image.digest, image.manifest, image.layer


def strata(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*strata_command(), *args], input=stdin, capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return proc


def test_a_backup_restored_into_a_fresh_node_scrubs_clean_and_serves(tmp_path: Path) -> None:
    env = {"STRATA_ADMIN_PASSWORD": ADMIN_PASSWORD}
    backup = tmp_path / "backup"
    with StrataServer(tmp_path / "a", "--workers", "1", env=env) as old:
        pushed = [push_image(old, f"f25/app{i}", "1") for i in range(3)]
        strata("user", "add", "alice", "--role", "releng", "--password-stdin",
               "--data", str(old.data_dir), stdin=ALICE_PASSWORD + "\n")
        # The database first (online, consistent), then the blobs and the keys.
        backup.mkdir(mode=0o700)
        src = sqlite3.connect(old.data_dir / "strata.db")
        dst = sqlite3.connect(backup / "strata.db")
        try:
            src.backup(dst)
        finally:
            dst.close()
            src.close()
        shutil.copytree(old.data_dir / "blobs", backup / "blobs")
        shutil.copytree(old.data_dir / "auth", backup / "auth")

    fresh = tmp_path / "b" / "data"
    fresh.mkdir(parents=True, mode=0o700)
    shutil.copyfile(backup / "strata.db", fresh / "strata.db")
    shutil.copytree(backup / "blobs", fresh / "blobs")
    shutil.copytree(backup / "auth", fresh / "auth")
    strata("init", "--data", str(fresh))
    report = json.loads(strata("scrub", "--data", str(fresh), "--json").stdout)
    assert report["ok"] is True and report["problems"] == [], report
    assert report["manifests"] == 3 and report["blobs"] == 6, report

    with StrataServer(tmp_path / "b", "--workers", "1", env=env) as new:
        for i, (digest, manifest, layer) in enumerate(pushed):
            resp = new.request("GET", f"/v2/f25/app{i}/manifests/1", headers={
                **new.admin_headers, "Accept": "application/vnd.oci.image.manifest.v1+json"})
            assert resp.status == 200 and resp.body == manifest
            assert resp.header("Docker-Content-Digest") == digest
            resp = new.request("GET", f"/v2/f25/app{i}/blobs/{sha256(layer)}",
                               headers=new.admin_headers)
            assert resp.status == 200 and resp.body == layer
        alice = base64.b64encode(f"alice:{ALICE_PASSWORD}".encode()).decode()
        resp = new.request("GET", "/auth/token?scope=repository:f25/app0:pull,push",
                           headers={"Authorization": f"Basic {alice}"})
        assert resp.status == 200, resp.body
        wrong = base64.b64encode(b"alice:not-her-password").decode()
        resp = new.request("GET", "/auth/token", headers={"Authorization": f"Basic {wrong}"})
        assert resp.status == 401
