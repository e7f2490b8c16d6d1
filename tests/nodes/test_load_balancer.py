"""Two ``strata serve`` nodes behind a real load balancer (Debian's nginx, round robin) on one
PostgreSQL database and one S3 bucket (``rclone serve s3``), as in production (issue 17): the
nodes share nothing but the database, the bucket and the secret key file (``--secret-key-file``,
made with ``strata auth new-secret-key``): no ``DATA/auth`` is copied between them.

- podman and skopeo log in, push and pull through the balancer; a token issued by one node is
  honoured by the other;
- failed logins are counted by both nodes together, per client behind the balancer
  (``--trusted-proxy``);
- ``strata auth rotate-keys`` while the nodes run: old tokens keep working, the nodes sign
  with the new key; ``--drop-old`` ends the old tokens on both;
- a node given another secret key refuses to start, saying why;
- an out-of-band release through the balancer, and the scheduler of both nodes, publish once.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest

from release.helpers import make_image, write_layout
from support.clients import Containers, OciLayout
from support.nginx import Nginx
from support.server import ServerStartError, StrataServer, strata_command

pytestmark = [pytest.mark.server, pytest.mark.interop]

ADMIN_PASSWORD = "admin-of-the-cluster-pw"
RELENG_PASSWORD = "releng-of-the-cluster-pw"
TODAY = dt.datetime.now(dt.UTC).date()


@dataclass
class Cluster:
    nodes: tuple[StrataServer, StrataServer]
    lb: Nginx
    key_file: Path
    args: list[str]
    env: dict[str, str]
    cli_data: Path

    def cli(self, *argv: str, stdin: str | None = None, ok: bool = True
            ) -> subprocess.CompletedProcess[str]:
        """An offline command on the shared database, with the shared secret key."""
        database = self.args[self.args.index("--database-url") + 1]
        proc = subprocess.run([*strata_command(), *argv, "--data", str(self.cli_data),
                               "--database-url", database], input=stdin, capture_output=True,
                              text=True, timeout=120, check=False,
                              env={**os.environ, **self.env})
        if ok:
            assert proc.returncode == 0, (argv, proc.stdout, proc.stderr)
        return proc

    def remote(self, *argv: str, user: str = "releng", password: str = RELENG_PASSWORD
               ) -> Any:
        """A command against the cluster through the balancer (``--json`` output)."""
        env = {**os.environ, "STRATA_URL": self.lb.url, "STRATA_USER": user,
               "STRATA_PASSWORD": password}
        proc = subprocess.run([*strata_command(), *argv, "--json"], capture_output=True,
                              text=True, env=env, timeout=120, check=False)
        assert proc.returncode == 0, (argv, proc.stdout, proc.stderr)
        return json.loads(proc.stdout)


def start_cluster(base: Path, stores: tuple[list[str], dict[str, str]], key_file: Path,
                  env: dict[str, str] | None = None) -> Cluster:
    """Two nodes (own data dirs, ``--public-url`` = the balancer) and nginx before them."""
    args, store_env = stores
    lb = Nginx(base / "lb", [])
    nodes = []
    try:
        for i in range(2):
            nodes.append(StrataServer(
                base / f"node{i}", "--workers", "1", "--gc-interval", "0", *args,
                "--public-url", lb.url, "--secret-key-file", str(key_file),
                "--trusted-proxy", "127.0.0.1",
                env={**store_env, "STRATA_ADMIN_PASSWORD": ADMIN_PASSWORD, **(env or {})}
            ).start())
        lb.upstreams = [n.host_port for n in nodes]
        lb.start()
    except BaseException:
        for node in nodes:
            node.stop()
        raise
    cluster_env = {**store_env, "STRATA_SECRET_KEY_FILE": str(key_file)}
    return Cluster((nodes[0], nodes[1]), lb, key_file, args, cluster_env, base / "cli")


def stop_cluster(cluster: Cluster) -> None:
    cluster.lb.stop()
    for node in cluster.nodes:
        node.stop()


def new_secret_key(path: Path) -> Path:
    proc = subprocess.run([*strata_command(), "auth", "new-secret-key", str(path)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert path.stat().st_mode & 0o077 == 0
    return path


@pytest.fixture
def cluster(tmp_path: Path, scale_out_stores: tuple[list[str], dict[str, str]]
            ) -> Iterator[Cluster]:
    started = start_cluster(tmp_path, scale_out_stores, new_secret_key(tmp_path / "secret-key"))
    try:
        yield started
    finally:
        stop_cluster(started)


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def token_from(node: StrataServer, scope: str, password: str = ADMIN_PASSWORD) -> str:
    resp = node.request("GET", f"/auth/token?service=strata&scope={scope}",
                        headers=basic("admin", password))
    assert resp.status == 200, resp.body
    token: str = json.loads(resp.body)["token"]
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def kid(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


def test_podman_and_skopeo_through_the_load_balancer(cluster: Cluster, busybox_layout: OciLayout,
                                                     tmp_path: Path) -> None:
    a, b = cluster.nodes
    lb = cluster.lb
    containers = Containers(tmp_path / "containers", lb.host_port)
    try:
        containers.skopeo("login", "--username", "admin", "--password", ADMIN_PASSWORD,
                          lb.host_port)
        pushed = tmp_path / "pushed.digest"
        containers.skopeo("copy", "--digestfile", str(pushed), busybox_layout.ref,
                          f"docker://{lb.host_port}/nodes/skopeo:v1")
        digest = pushed.read_text().strip()
        assert digest == busybox_layout.manifest_digest
        out = tmp_path / "pulled"
        containers.skopeo("copy", f"docker://{lb.host_port}/nodes/skopeo@{digest}",
                          f"dir:{out}")
        assert (out / "manifest.json").read_bytes() == busybox_layout.manifest_bytes()
        for blob in (busybox_layout.config_digest, *busybox_layout.layer_digests):
            assert (out / blob.split(":", 1)[1]).read_bytes() == busybox_layout.blob(blob)

        login = containers.podman("login", "--username", "admin", "--password",
                                  ADMIN_PASSWORD, lb.host_port).stdout
        assert "Login Succeeded" in login
        image_id = containers.podman("pull", f"{lb.host_port}/nodes/skopeo:v1").stdout.split()[-1]
        containers.podman("tag", image_id, f"{lb.host_port}/nodes/podman:v1")
        containers.podman("push", f"{lb.host_port}/nodes/podman:v1")
        containers.podman("rmi", "--force", image_id)
        containers.podman("pull", f"{lb.host_port}/nodes/podman:v1")
        info = json.loads(containers.skopeo("inspect",
                                            f"docker://{lb.host_port}/nodes/podman:v1").stdout)
        assert info["Layers"] and info["Name"] == f"{lb.host_port}/nodes/podman"
    finally:
        containers.cleanup()
    # both nodes served the clients, token requests and registry requests alike
    assert lb.upstreams_used("/v2/nodes/") == {a.host_port, b.host_port}, lb.access_log()
    assert lb.upstreams_used("/auth/token") == {a.host_port, b.host_port}, lb.access_log()
    # no node answered 400 or 5xx (nginx itself answers 400 to the clients' TLS probes: the
    # registry is insecure=true, which the clients try HTTPS on first)
    answered = [e for e in lb.access_log() if e[3] != "-"]
    assert len(answered) > 20 and not [e for e in answered if e[2] >= 500 or e[2] == 400], \
        answered

    # a token issued by one node is honoured by the other, for reads and writes
    for issuer, other in ((a, b), (b, a)):
        token = token_from(issuer, "repository:nodes/podman:pull,push")
        resp = other.request("HEAD", "/v2/nodes/podman/manifests/v1", headers={
            **bearer(token), "Accept": "application/vnd.oci.image.manifest.v1+json"})
        assert resp.status == 200
        started = other.request("POST", "/v2/nodes/podman/blobs/uploads/",
                                headers=bearer(token))
        assert started.status == 202, started.body
        location = started.header("location")
        assert location is not None and location.startswith("/v2/nodes/podman/blobs/uploads/")
        # the session is the cluster's: the issuing node ends it with the same token
        assert issuer.request("DELETE", location, headers=bearer(token)).status == 204


def test_failed_logins_are_counted_by_both_nodes(cluster: Cluster) -> None:
    """10 failures are allowed per client and user (``LoginLimits``), refilled at 10 a
    minute: spread over both nodes, the 11th is throttled (a token may refill meanwhile on a
    slow machine, hence "within 13"); with a budget per node it would take 21."""
    a, b = cluster.nodes
    wrong = basic("admin", "not-the-password")
    statuses = []
    for attempt in range(14):
        node = (a, b)[attempt % 2]
        statuses.append(node.request("GET", "/auth/token?service=strata", headers=wrong).status)
        if statuses[-1] == 429:
            break
    assert statuses[-1] == 429 and 11 <= len(statuses) <= 13, statuses
    assert set(statuses[:-1]) == {401}
    for node in (a, b):  # both nodes refuse now, even the right password, and say when
        resp = node.request("GET", "/auth/token?service=strata",
                            headers=basic("admin", ADMIN_PASSWORD))
        assert resp.status == 429
        assert int(resp.header("retry-after") or 0) >= 1
    assert cluster.lb.request("GET", "/auth/token?service=strata", headers=wrong).status == 429


def test_failed_logins_behind_the_balancer_count_per_client(cluster: Cluster) -> None:
    """The nodes trust the balancer (``--trusted-proxy 127.0.0.1``): a client's failures are
    counted for the address nginx saw (``X-Forwarded-For``), not for the balancer's, so one
    guesser does not lock everybody out; what a client writes into the header itself does not
    get it out of its own budget."""
    lb = cluster.lb
    wrong, right = basic("admin", "not-the-password"), basic("admin", ADMIN_PASSWORD)
    path = "/auth/token?service=strata"
    statuses = []
    for _ in range(14):
        statuses.append(lb.request("GET", path, headers=wrong, source="127.0.0.3").status)
        if statuses[-1] == 429:
            break
    assert statuses[-1] == 429 and 11 <= len(statuses) <= 13, statuses
    # the guesser stays throttled, through either node, whatever it claims to be
    assert lb.request("GET", path, headers=right, source="127.0.0.3").status == 429
    for claim in ("10.9.9.9", "127.0.0.4", "127.0.0.1"):
        resp = lb.request("GET", path, source="127.0.0.3",
                          headers={**right, "X-Forwarded-For": claim})
        assert resp.status == 429, claim
    # another client logs in (and may fail) as usual, also when it names the guesser
    assert lb.request("GET", path, headers=right, source="127.0.0.4").status == 200
    assert lb.request("GET", path, headers=wrong, source="127.0.0.4").status == 401
    assert lb.request("GET", path, source="127.0.0.4",
                      headers={**right, "X-Forwarded-For": "127.0.0.3"}).status == 200


def _wait_for(predicate: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.25)


def test_keys_rotate_while_both_nodes_run(cluster: Cluster) -> None:
    a, b = cluster.nodes
    [first] = json.loads(cluster.cli("auth", "keys", "--json").stdout)
    assert first["state"] == "signing"
    old = token_from(a, "repository:nodes/rot:pull")
    assert kid(old) == first["kid"]
    for node in (a, b):
        assert node.request("GET", "/v2/", headers=bearer(old)).status == 200

    rotated = json.loads(cluster.cli("auth", "rotate-keys", "--json").stdout)
    assert rotated["retired"] == [first["kid"]] and rotated["signing"] != first["kid"]
    states = {k["kid"]: k["state"] for k in json.loads(cluster.cli("auth", "keys",
                                                                   "--json").stdout)}
    assert states == {first["kid"]: "verifying", rotated["signing"]: "signing"}
    for node in (a, b):  # the old key still verifies its tokens
        assert node.request("GET", "/v2/", headers=bearer(old)).status == 200

    # within the refresh interval (10 s) each node signs with the new key, without a restart;
    # the other node accepts those tokens at once
    for signer, other in ((a, b), (b, a)):
        _wait_for(lambda: kid(token_from(signer, "repository:nodes/rot:pull")) ==  # noqa: B023
                  rotated["signing"], f"{signer} signs with the new key")
        fresh = token_from(signer, "repository:nodes/rot:pull")
        assert other.request("GET", "/v2/", headers=bearer(fresh)).status == 200

    # --drop-old: the old key's tokens stop working on both nodes
    dropped = json.loads(cluster.cli("auth", "rotate-keys", "--drop-old", "--json").stdout)
    assert sorted(dropped["dropped"]) == sorted([first["kid"], rotated["signing"]])
    for node in (a, b):
        _wait_for(lambda: node.request("GET", "/v2/",  # noqa: B023
                                       headers=bearer(old)).status == 401,
                  f"{node} refuses the dropped key's token")
    newest = token_from(a, "repository:nodes/rot:pull")
    assert b.request("GET", "/v2/", headers=bearer(newest)).status == 200


def test_a_node_with_another_secret_key_refuses_to_start(
        cluster: Cluster, tmp_path: Path,
        scale_out_stores: tuple[list[str], dict[str, str]]) -> None:
    args, env = scale_out_stores
    other = StrataServer(tmp_path / "stray", "--workers", "1", *args, "--secret-key-file",
                         str(new_secret_key(tmp_path / "other-key")), env=env,
                         startup_timeout=60)
    with pytest.raises(ServerStartError):
        other.start()
    other.stop()
    log = other.log_text()
    assert "give every node the same secret key" in log, log
    assert "Traceback" not in log, log
    # without --secret-key-file a new node would make a key of its own: refused the same way
    lone = StrataServer(tmp_path / "lone", "--workers", "1", *args, env=env, startup_timeout=60)
    with pytest.raises(ServerStartError):
        lone.start()
    lone.stop()
    assert "give every node the same secret key" in lone.log_text()


def _push(containers: Containers, tmp: Path, lb: Nginx, repo: str, version: str,
          release: str) -> str:
    image = make_image(repo.split("/")[1], version, f"{release}.{repo.split('/')[0]}docker")
    layout = tmp / f"layout-{image.digest[7:19]}"
    write_layout(layout, image)
    containers.skopeo("copy", "--dest-creds", f"releng:{RELENG_PASSWORD}",
                      f"oci:{layout}:build", f"docker://{lb.host_port}/{repo}@{image.digest}")
    return image.digest


def test_releases_and_the_scheduler_publish_once_with_two_nodes(
        tmp_path: Path, scale_out_stores: tuple[list[str], dict[str, str]]) -> None:
    key = new_secret_key(tmp_path / "secret-key")
    # set up with the schedulers off: f26's first release is due today, f25's tomorrow
    first = start_cluster(tmp_path / "setup", scale_out_stores, key,
                          {"STRATA_SCHEDULER_INTERVAL": "0"})
    containers = Containers(tmp_path / "containers", first.lb.host_port)
    try:
        first.cli("user", "add", "releng", "--role", "releng", "--password-stdin",
                  stdin=RELENG_PASSWORD + "\n")
        tomorrow = (TODAY + dt.timedelta(days=1)).isoformat()
        first.remote("namespace", "add", "f25", "--dist-tag", "f25docker", "--anchor", tomorrow)
        first.remote("namespace", "add", "f26", "--dist-tag", "f26docker", "--anchor",
                     TODAY.isoformat())
        for image in ("f25/x", "f26/z"):
            first.remote("image", "add", image, "--reason", "test fixture")
        d25 = _push(containers, tmp_path, first.lb, "f25/x", "130", "1")
        d26 = _push(containers, tmp_path, first.lb, "f26/z", "2", "1")
        first.remote("candidate", "add", f"f25/x@{d25}")
        first.remote("candidate", "add", f"f26/z@{d26}")
        # an out-of-band release through the balancer: published once, tags moved once
        oob = first.remote("release", "oob", f"f25/x@{d25}", "--advisory", "NODES-1",
                           "--reason", "two nodes")
        assert [r["name"] for r in first.remote("release", "list")["releases"]] == \
            [oob["name"]]
        assert first.remote("release", "list")["releases"][0]["actor"] == "releng"
    finally:
        containers.cleanup()
        stop_cluster(first)

    # two nodes (new ones: nothing of a node's data dir is needed) with their schedulers on
    # (every 0.2 s): f26's release is published once
    second = start_cluster(tmp_path / "run", scale_out_stores, key,
                           {"STRATA_SCHEDULER_INTERVAL": "0.2"})
    try:
        def published() -> list[tuple[str, str]]:
            return [(r["name"], r["actor"]) for r in
                    second.remote("release", "list")["releases"] if r["actor"] == "scheduler"]
        _wait_for(lambda: published() != [], "the scheduler publishes f26's release")
        time.sleep(1.0)  # both nodes have had several chances to publish it again
        assert published() == [(f"f26-{TODAY.isoformat()}", "scheduler")]
        assert len(second.remote("history", "f26/z:latest")["events"]) == 1
        assert len(second.remote("history", "f25/x:latest")["events"]) == 1
        assert {n.host_port for n in second.nodes} == second.lb.upstreams_used("/api/")
    finally:
        stop_cluster(second)
