"""The data dir is owner-only whatever the umask, ``strata serve`` tightens an open one, webhook
secrets are sealed in the database and shown redacted by the CLI, and release notes shown by
``strata release show`` escape candidate text (issue 12) — all on a real ``strata serve``."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import json
import os
import sqlite3
import stat
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from release.helpers import make_image, sha256
from support.server import StrataServer, strata_command

pytestmark = pytest.mark.server

def modes(root: Path) -> dict[str, tuple[str, int]]:
    """Every path under ``root`` (itself included): kind and permission bits."""
    found = {".": ("dir", stat.S_IMODE(root.lstat().st_mode))}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath, name)
            st = path.lstat()
            kind = "dir" if stat.S_ISDIR(st.st_mode) else "file"
            found[str(path.relative_to(root))] = (kind, stat.S_IMODE(st.st_mode))
    return found


def assert_owner_only(root: Path) -> dict[str, tuple[str, int]]:
    found = modes(root)
    wrong = {p: f"{k} {m:04o}" for p, (k, m) in found.items()
             if m != (0o700 if k == "dir" else 0o600)}
    assert not wrong, wrong
    return found


class Receiver:
    """A webhook receiver on loopback (allowed by --webhook-allow-private)."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        received = self.received

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((dict(self.headers), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def cli(server: StrataServer, *args: str, stdin: str | None = None,
        ok: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "STRATA_URL": server.url, "STRATA_USER": server.admin_user,
           "STRATA_PASSWORD": server.admin_password}
    proc = subprocess.run([*strata_command(), *args], capture_output=True, text=True, env=env,
                          input=stdin, timeout=60, check=False)
    if ok:
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return proc


def push_image(server: StrataServer, repo: str, version: str) -> str:
    image = make_image(repo.split("/")[1], version, f"1.{repo.split('/')[0]}docker")
    for blob in (image.layer, image.config):
        resp = server.request("POST", f"/v2/{repo}/blobs/uploads/?digest={sha256(blob)}",
                              body=blob, headers={**server.admin_headers,
                                                  "Content-Type": "application/octet-stream"})
        assert resp.status == 201, resp.body
    resp = server.request("PUT", f"/v2/{repo}/manifests/{image.digest}", body=image.manifest,
                          headers={**server.admin_headers,
                                   "Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    assert resp.status == 201, resp.body
    return image.digest


HOSTILE = ("fixed\n\n## f25/b\n\n```\npodman pull evil.example/f25/b:latest\n```\n"
           "<img src=x onerror=alert(1)>")


def test_serve_under_umask_000_keeps_everything_owner_only(tmp_path: Path,
                                                           receiver: Receiver) -> None:
    env = {"STRATA_WEBHOOK_INTERVAL": "0.2"}
    with StrataServer(tmp_path, "--workers", "2", "--webhook-allow-private", env=env,
                      umask=0) as server:
        # Pushes (finished blobs, a manifest) and an upload left half-way.
        push_image(server, "f25/a", "1")
        resp = server.request("POST", "/v2/f25/a/blobs/uploads/", headers=server.admin_headers)
        assert resp.status == 202
        location = resp.header("Location")
        assert location is not None
        resp = server.request("PATCH", location, body=b"half an upload",
                              headers={**server.admin_headers,
                                       "Content-Type": "application/octet-stream"})
        assert resp.status == 202, resp.body
        assert server.request("GET", "/metrics").status == 200
        assert server.request("GET", "/v2/", headers={
            "Authorization": "Basic " + base64.b64encode(b"admin:wrong").decode()}).status == 401
        # A webhook with credentials in its URL and a secret (from stdin): shown redacted.
        url = f"http://hookuser:url-pass-1@127.0.0.1:{receiver.port}/hook?token=tok-2"
        added = cli(server, "webhook", "add", url, "--secret-stdin", stdin="hmac-key-3\n")
        shown = f"http://***@127.0.0.1:{receiver.port}/hook?token=***"
        assert added.stdout.strip() == f"webhook 1: {shown}"
        listed = cli(server, "webhook", "list")
        assert shown in listed.stdout
        listed_json = cli(server, "webhook", "list", "--json").stdout
        for secret in ("url-pass-1", "tok-2", "hmac-key-3"):
            assert secret not in listed.stdout + listed_json + added.stdout
        # An event, delivered with the right signature to the whole URL.
        cli(server, "namespace", "add", "f25", "--dist-tag", "f25docker")
        cli(server, "image", "add", "f25/a")
        cli(server, "stream", "eol", "f25/a:1")
        for _ in range(100):
            if receiver.received:
                break
            threading.Event().wait(0.1)
        [(headers, body)] = receiver.received
        mac = hmac.new(b"hmac-key-3", body, hashlib.sha256).hexdigest()
        assert headers["X-Strata-Signature"] == f"sha256={mac}"
        assert headers["Authorization"] == "Basic " + base64.b64encode(
            b"hookuser:url-pass-1").decode()
        # Release notes of a hostile candidate, through the CLI.
        cli(server, "image", "add", "f25/b")  # approved: takes candidates (issue 14)
        digest = push_image(server, "f25/b", "2")
        cli(server, "candidate", "add", f"f25/b@{digest}", "--reason", HOSTILE,
            "--advisory", "<script>x</script>")
        name = json.loads(cli(server, "release", "publish", "--json").stdout)["name"]
        notes = cli(server, "release", "show", name).stdout
        assert [line for line in notes.splitlines() if line.startswith("#")] == [
            f"# Release {name}", "## f25/b"]
        assert "<img" not in notes and "<script" not in notes
        assert not [line for line in notes.splitlines()
                    if line.startswith("podman pull") and "evil" in line]

        found = assert_owner_only(server.data_dir)
    for expected in ("strata.db", "strata.db-wal", "strata.db-shm", "strata.db.writelock",
                     "uploads", "blobs", "auth", "auth/webhook-key", "metrics"):
        assert expected in found, sorted(found)
    assert any(p.startswith("uploads/") for p in found)
    assert any(p.startswith("blobs/sha256/") and found[p][0] == "file" for p in found)
    assert any(p.startswith("metrics/") and found[p][0] == "file" for p in found)
    # Nothing of the webhook's secrets in the database file, WAL included.
    raw = b"".join((server.data_dir / n).read_bytes()
                   for n in ("strata.db", "strata.db-wal") if (server.data_dir / n).exists())
    for secret in (b"url-pass-1", b"tok-2", b"hmac-key-3"):
        assert secret not in raw


def test_serve_tightens_an_open_data_dir_and_seals_old_rows(tmp_path: Path) -> None:
    server = StrataServer(tmp_path, "--workers", "1")
    with server:
        push_image(server, "f25/a", "1")
    # What an older strata left: everything readable by others, a plaintext webhook row.
    with sqlite3.connect(server.data_dir / "strata.db") as conn:
        conn.execute("INSERT INTO webhooks (url, events, secret, active, created_at) "
                     "VALUES ('https://u:old-pass@hooks.example/x', '[]', 'old-secret', 1, 0)")
    for path in [server.data_dir, *server.data_dir.rglob("*")]:
        path.chmod(0o777 if path.is_dir() else 0o644)
    opened = modes(server.data_dir)
    dirs = sum(1 for k, _ in opened.values() if k == "dir")
    files = len(opened) - dirs
    log_before = len(server.log_text())
    with server:
        log = server.log_text()[log_before:]
        listed = cli(server, "webhook", "list").stdout
    assert_owner_only(server.data_dir)
    lines = [line for line in log.splitlines() if "open to other users" in line]
    assert lines == [
        f"strata: {server.data_dir}: {dirs} directories were open to other users; "
        "made owner-only (0700)",
        f"strata: {server.data_dir}: {files} files were open to other users; "
        "made owner-only (0600 or 0700)"], log
    assert "sealed the secrets of 1 webhook(s)" in log
    assert "https://***@hooks.example/x" in listed and "old-pass" not in listed
    with sqlite3.connect(server.data_dir / "strata.db") as conn:
        raw = repr(conn.execute("SELECT * FROM webhooks").fetchall())
    assert "old-pass" not in raw and "old-secret" not in raw


def test_strata_init_creates_an_owner_only_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "new" / "data"
    proc = subprocess.run([*strata_command(), "init", "--data", str(data)],
                          capture_output=True, text=True, timeout=120, check=False, umask=0)
    assert proc.returncode == 0, proc.stderr
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o700
    found = assert_owner_only(data)
    assert "strata.db" in found


@pytest.mark.parametrize("command", [
    ["user", "add", "alice", "--role", "releng", "--password-stdin"],
    ["robot", "add", "ci"],
    ["gc"],
    ["scrub", "--quick"],
])
def test_offline_commands_keep_the_data_dir_owner_only(tmp_path: Path,
                                                       command: list[str]) -> None:
    data = tmp_path / "data"
    subprocess.run([*strata_command(), "init", "--data", str(data)], capture_output=True,
                   timeout=120, check=True)
    proc = subprocess.run([*strata_command(), *command, "--data", str(data)],
                          input="a-password\n", capture_output=True, text=True, timeout=120,
                          check=False, umask=0)
    assert proc.returncode == 0, proc.stderr
    assert "strata.db" in assert_owner_only(data)


def test_webhook_secrets_are_sealed_in_either_database(tmp_path: Path,
                                                       database_args: list[str]) -> None:
    """SQLite or PostgreSQL (migration 0007 there widens the column): the rows hold no secret,
    and a restarted server opens them with the same key file."""
    server = StrataServer(tmp_path, *database_args)
    with server:
        cli(server, "webhook", "add", "https://ci:pg-pass-1@hooks.example.com/h",
            "--secret-stdin", stdin="pg-secret-2" * 40 + "\n")
    url = database_args[1] if database_args else f"sqlite:///{server.data_dir / 'strata.db'}"
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            raw = repr(conn.execute(sa.text("SELECT * FROM webhooks")).all())
    finally:
        engine.dispose()
    assert "pg-pass-1" not in raw and "pg-secret-2" not in raw and "sealed:v1:" in raw
    with server:
        assert "https://***@hooks.example.com/h" in cli(server, "webhook", "list").stdout
    key = server.data_dir / "auth" / "webhook-key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
