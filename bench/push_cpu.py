"""Server CPU per request of each step of a small-image push, strata against distribution
(issue #18: small-image pushes at >= 3x distribution).

``bench/run.py``'s small-image row gives images/s and server CPU per image; this says where
that CPU goes. It starts ``strata serve --workers 1`` (open, as run.py runs it; with
``--base-src``, the strata of another checkout beside it for an A/B) and Debian's
``docker-registry``, and sends each kind of request of a push one after the other on one
keep-alive connection, as ``bench/workloads.Client.push_small_blob`` and ``put_manifest`` do:

* ``head``: HEAD of a blob that is not there (404), what a pusher asks first;
* ``post``: POST ``/blobs/uploads/`` (202, a new session);
* ``post+put``: a POST and the PUT ``?digest=`` with a ``--blob-kib`` body (201): the PUT's
  own cost is this less ``post``;
* ``manifest``: PUT of a small image's manifest under a new tag (201).

Reported per kind and server: utime and stime of the server's processes per request (from
/proc), best of ``--rounds`` rounds run interleaved, and per image (three blobs and a
manifest, as run.py's images are: ``3 x (head + post+put) + manifest``).

    .venv/bin/python bench/push_cpu.py
    .venv/bin/python bench/push_cpu.py --base-src /tmp/base/src --rounds 5
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from urllib.parse import quote, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

from servers import Server, distribution_server, strata_server
from storm_cpu import cpu_split, keep_best

KINDS = ("head", "post", "post+put", "manifest")
REPO = "bench/pushcpu"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


class Pusher:
    """One keep-alive connection doing one kind of push request at a time."""

    def __init__(self, server: Server, blob_kib: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        self.blob_kib = blob_kib
        self.n = 0
        self.name = server.name
        self.layers = [self._fresh_blob() for _ in range(2)]
        self.config = self._fresh_blob()

    def _call(self, method: str, path: str, body: bytes | None = None,
              headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
        self.conn.request(method, path, body=body, headers=headers or {})
        resp = self.conn.getresponse()
        resp.read()
        return resp

    def _blob(self) -> tuple[bytes, str]:
        self.n += 1
        data = (f"{self.name}-{self.n}-".encode() * (self.blob_kib * 64))[:self.blob_kib * 1024]
        return data, "sha256:" + hashlib.sha256(data).hexdigest()

    def _fresh_blob(self) -> tuple[str, int]:
        data, digest = self._blob()
        self.post_put(data, digest)
        return digest, len(data)

    def head(self) -> None:
        _, digest = self._blob()
        resp = self._call("HEAD", f"/v2/{REPO}/blobs/{digest}")
        if resp.status != 404:
            raise RuntimeError(f"{self.name} HEAD: HTTP {resp.status}")

    def post(self) -> str:
        resp = self._call("POST", f"/v2/{REPO}/blobs/uploads/", b"",
                          {"Content-Length": "0"})
        if resp.status != 202:
            raise RuntimeError(f"{self.name} POST: HTTP {resp.status}")
        location = urlsplit(resp.headers["Location"])
        return location.path + (f"?{location.query}" if location.query else "")

    def post_put(self, data: bytes | None = None, digest: str | None = None) -> None:
        if data is None or digest is None:
            data, digest = self._blob()
        loc = self.post()
        put = loc + ("&" if "?" in loc else "?") + "digest=" + quote(digest)
        resp = self._call("PUT", put, data, {"Content-Type": "application/octet-stream"})
        if resp.status != 201:
            raise RuntimeError(f"{self.name} PUT: HTTP {resp.status}")

    def manifest(self) -> None:
        self.n += 1
        body = json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": self.config[0], "size": self.config[1]},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": d, "size": s} for d, s in self.layers],
            "annotations": {"n": str(self.n)}}).encode()
        resp = self._call("PUT", f"/v2/{REPO}/manifests/t{self.n}", body,
                          {"Content-Type": OCI_MANIFEST})
        if resp.status != 201:
            raise RuntimeError(f"{self.name} manifest PUT: HTTP {resp.status}")

    def do(self, kind: str) -> None:
        if kind == "head":
            self.head()
        elif kind == "post":
            self.post()
        elif kind == "post+put":
            self.post_put()
        else:
            self.manifest()


def measure(server: Server, pusher: Pusher, kind: str, n: int) -> tuple[float, float]:
    """ms of user and system CPU per request of *kind*, *n* of them."""
    u0, s0 = cpu_split(server.pid)
    for _ in range(n):
        pusher.do(kind)
    u1, s1 = cpu_split(server.pid)
    return (u1 - u0) * 1000 / n, (s1 - s0) * 1000 / n


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--requests", type=int, default=600, help="per kind and round")
    p.add_argument("--blob-kib", type=int, default=32)
    p.add_argument("--base-src", type=Path, default=None,
                   help="A/B: also measure the strata of another checkout's src dir")
    p.add_argument("--no-distribution", action="store_true")
    args = p.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="strata-bench-push-cpu-"))
    servers = [strata_server(workdir, 1)]
    if args.base_src is not None:
        servers.append(strata_server(workdir, 1, name="strata-base", src=args.base_src))
    if not args.no_distribution:
        servers.append(distribution_server(workdir))
    best: dict[tuple[str, str], tuple[float, float]] = {}
    started: list[Server] = []
    try:
        pushers = []
        for server in servers:
            server.start(timeout=60)
            started.append(server)
            pushers.append(Pusher(server, args.blob_kib))
        load = os.getloadavg()
        for kind in KINDS:
            for server, pusher in zip(servers, pushers, strict=True):  # warm
                measure(server, pusher, kind, 20)
            for _ in range(args.rounds):
                for server, pusher in zip(servers, pushers, strict=True):
                    keep_best(best, kind, server.name,
                              measure(server, pusher, kind, args.requests))
    finally:
        for server in started:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    names = [server.name for server in servers]
    print(f"server CPU per request, ms (user + system, best of {args.rounds} rounds of "
          f"{args.requests}; one connection, requests one after the other; --workers 1, no "
          f"auth; {args.blob_kib} KiB blobs; load {load[0]:.1f} -> {os.getloadavg()[0]:.1f})")
    print("| request | " + " | ".join(names) + " |")
    print("| --- |" + " --- |" * len(names))
    for kind in KINDS:
        cells = [f"{sum(best[(kind, n)]):.3f} ({best[(kind, n)][0]:.3f} + "
                 f"{best[(kind, n)][1]:.3f})" for n in names]
        print(f"| {kind} | " + " | ".join(cells) + " |")
    image = {n: 3 * (sum(best[("head", n)]) + sum(best[("post+put", n)]))
             + sum(best[("manifest", n)]) for n in names}
    print("| an image (3 x (head + post+put) + manifest) | "
          + " | ".join(f"{image[n]:.2f}" for n in names) + " |")
    if "distribution" in image:
        print("strata / distribution per image: "
              f"{image['strata'] / max(image['distribution'], 1e-9):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
