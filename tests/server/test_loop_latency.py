"""Nobody with push stalls the event loop: while big manifests are pushed (or a candidate of a
huge index is registered) on a ``strata serve --workers 1`` (one loop for everything), an
unrelated manifest GET stays under 50 ms at the 99th percentile. Loopback only, bounded
request counts; the load runs in a process of its own (``flood.py``)."""

from __future__ import annotations

import hashlib
import http.client
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from support.server import HOST, StrataServer

pytestmark = pytest.mark.server

FLOOD = Path(__file__).with_name("flood.py")
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
P99_LIMIT = 0.050


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def compact(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def push_blob(server: StrataServer, repo: str, data: bytes) -> dict[str, Any]:
    resp = server.request("POST", f"/v2/{repo}/blobs/uploads/?digest={sha256(data)}",
                          headers=server.admin_headers, body=data)
    assert resp.status == 201, resp
    return {"digest": sha256(data), "size": len(data)}


def push_manifest(server: StrataServer, repo: str, ref: str, body: bytes,
                  media_type: str = OCI_MANIFEST) -> str:
    resp = server.request("PUT", f"/v2/{repo}/manifests/{ref}", body=body,
                          headers={**server.admin_headers, "Content-Type": media_type})
    assert resp.status == 201, resp
    return sha256(body)


def image(server: StrataServer, repo: str, labels: dict[str, str], layers: int = 1,
          tag: str | None = None) -> tuple[bytes, str]:
    config = compact({"architecture": "amd64", "os": "linux", "config": {"Labels": labels},
                      "rootfs": {"type": "layers", "diff_ids": []}})
    cfg = {"mediaType": OCI_CONFIG, **push_blob(server, repo, config)}
    layer = {"mediaType": LAYER, **push_blob(server, repo, repo.encode() * 10)}
    body = compact({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": cfg,
                    "layers": [layer] * layers})
    return body, push_manifest(server, repo, tag or sha256(body), body)


def measure_gets(server: StrataServer, path: str, flood: subprocess.Popen[str]) -> list[float]:
    """GET ``path`` (anonymous, keep-alive) every ~10 ms while ``flood`` runs."""
    assert flood.stdout is not None
    assert flood.stdout.readline().strip() == "go"
    times: list[float] = []
    conn = http.client.HTTPConnection(HOST, server.port, timeout=30)
    try:
        while flood.poll() is None and len(times) < 3000:
            start = time.perf_counter()
            conn.request("GET", path, headers={"Accept": OCI_MANIFEST})
            resp = conn.getresponse()
            resp.read()
            times.append(time.perf_counter() - start)
            assert resp.status == 200
            time.sleep(0.01)
    finally:
        conn.close()
    return times


def run_flood(server: StrataServer, tmp_path: Path, threads: int,
              jobs: list[list[Any]]) -> tuple[list[float], list[int]]:
    spec = tmp_path / "jobs.json"
    spec.write_text(json.dumps({"threads": threads, "jobs": jobs}))
    # The load generator stands for clients on other machines: on this (shared, 2-core) one
    # it runs at a lower priority than the server and the measuring client.
    flood = subprocess.Popen(["nice", "-n", "19", sys.executable, str(FLOOD), str(server.port),
                              str(spec)], stdout=subprocess.PIPE, text=True)
    try:
        times = measure_gets(server, "/v2/free/pull/manifests/v1", flood)
        out, _ = flood.communicate(timeout=300)
    finally:
        if flood.poll() is None:
            flood.kill()
    statuses: list[int] = json.loads(out.strip().splitlines()[-1])
    return times, statuses


def p99(times: list[float]) -> float:
    ordered = sorted(times)
    value = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    print(f"GETs: {len(times)}, p50 {ordered[len(ordered) // 2] * 1000:.1f} ms, "
          f"p99 {value * 1000:.1f} ms, max {ordered[-1] * 1000:.1f} ms")
    return value


def test_big_manifest_pushes_leave_pulls_fast(tmp_path: Path) -> None:
    with StrataServer(tmp_path, "--workers", "1") as server:
        image(server, "free/pull", {"x": "y"}, tag="v1")
        body, _ = image(server, "lat/big", {"x": "z"})
        doc = json.loads(body)
        at_cap = tmp_path / "cap.json"  # 10,000 layers (the default cap): stored
        at_cap.write_bytes(compact({**doc, "layers": doc["layers"] * 10_000}))
        over = tmp_path / "over.json"  # 27,000 layers, 3.9 MiB: refused
        over.write_bytes(compact({**doc, "layers": doc["layers"] * 27_000}))
        assert over.stat().st_size < 4 << 20
        headers = {**server.admin_headers, "Content-Type": OCI_MANIFEST}
        jobs = [["PUT", f"/v2/lat/big/manifests/t{i}", str(at_cap if i % 2 else over), headers]
                for i in range(48)]
        times, statuses = run_flood(server, tmp_path, 16, jobs)
        assert sorted(set(statuses)) == [201, 400], statuses
        assert statuses.count(201) == 24
        assert len(times) >= 30, len(times)
        assert p99(times) < P99_LIMIT, (p99(times), max(times), len(times))
        resp = server.request("PUT", "/v2/lat/big/manifests/over", body=over.read_bytes(),
                              headers=headers)
        assert resp.status == 400 and b"at most 10000 references" in resp.body


def test_registering_a_huge_index_leaves_pulls_fast(tmp_path: Path) -> None:
    with StrataServer(tmp_path, "--workers", "1") as server:
        # the pulled image outside the namespace: there, tags come only from releases
        image(server, "free/pull", {"x": "y"}, tag="v1")
        resp = server.request("POST", "/api/v1/namespaces", body=compact(
            {"name": "lat", "dist_tag": "lat1"}), headers={**server.admin_headers,
                                                            "Content-Type": "application/json"})
        assert resp.status == 201, resp
        resp = server.request("POST", "/api/v1/images", body=compact(  # approved (issue 14)
            {"repository": "lat/app"}), headers={**server.admin_headers,
                                                 "Content-Type": "application/json"})
        assert resp.status == 201, resp
        child, child_digest = image(server, "lat/app", {
            "name": "app", "version": "1.0", "release": "1.lat1"})
        entry = {"mediaType": OCI_MANIFEST, "digest": child_digest, "size": len(child),
                 "platform": {"architecture": "amd64", "os": "linux"}}
        indexes = []
        for i in range(6):  # 10,000 entries each (the cap), ~1.5 MiB
            body = compact({"schemaVersion": 2, "mediaType": OCI_INDEX,
                            "manifests": [entry] * 10_000, "annotations": {"n": str(i)}})
            indexes.append(push_manifest(server, "lat/app", sha256(body), body, OCI_INDEX))
        headers = {**server.admin_headers, "Content-Type": "application/json"}
        bodies = []
        for i, digest in enumerate(indexes):
            path = tmp_path / f"candidate{i}.json"
            path.write_bytes(compact({"reference": f"lat/app@{digest}"}))
            bodies.append(path)
        jobs = [["POST", "/api/v1/candidates", str(bodies[i % 6]), headers] for i in range(12)]
        times, statuses = run_flood(server, tmp_path, 6, jobs)
        # One index becomes the candidate; the others carry the same NVR (409).
        assert set(statuses) <= {201, 409} and 201 in statuses, statuses
        assert len(times) >= 10, len(times)
        assert p99(times) < P99_LIMIT, (p99(times), max(times), len(times))
