"""Server CPU per request of each step of a storm pull, strata against nginx (issue #18).

Throughput figures on a shared machine move with the load; the CPU a server spends per request
moves much less. This starts ``strata serve --workers 1`` with authentication on (and, with
``--base-src``, the strata of another checkout for an A/B) and nginx serving the very same
blob files, pushes the storm's image, and sends each kind of request of a pull one after the
other on one keep-alive connection: ``token`` (Basic credentials to ``/auth/token``),
``manifest`` (by tag), ``config`` (a ~0.5 KiB blob) and ``blob`` (a ``--layer-mib`` layer).
Reported per kind and server: utime and stime of the server's processes per request (from
/proc), best of ``--rounds`` rounds run interleaved; the load average is printed beside.

A pull costs ``token + manifest + config + layers x blob``; with few clients the storm is
bound by this CPU (nginx's is almost all the kernel's sendfile), so the difference per request
is what ``storm.py``'s 8-client rows show.

    .venv/bin/python bench/storm_cpu.py
    .venv/bin/python bench/storm_cpu.py --base-src /tmp/base/src --rounds 5
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import sys
import tempfile
from base64 import b64encode
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import storm
from servers import Server

MIB = 1 << 20
KINDS = ("token", "manifest", "config", "blob")


def cpu_split(root: int) -> tuple[float, float]:
    """utime, stime (s) of the process tree."""
    user = system = 0
    for pid in storm.procmem.descendants(root):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        user, system = user + int(fields[11]), system + int(fields[12])
    return user / storm.CLK_TCK, system / storm.CLK_TCK


def requests_for(kind: str, image: storm.Image, token_path: str | None,
                 basic: str, bearer: str) -> tuple[str, dict[str, str]]:
    if kind == "token":
        assert token_path is not None
        return token_path, {"Authorization": basic}
    if kind == "manifest":
        return (f"/v2/{storm.REPO}/manifests/{storm.TAG}",
                {"Authorization": bearer, "Accept": storm.OCI_MANIFEST})
    blob = image.config if kind == "config" else image.layers[0]
    return f"/v2/{storm.REPO}/blobs/{storm.digest(blob)}", {"Authorization": bearer}


def keep_best(best: dict[tuple[str, str], tuple[float, float]], kind: str, server: str,
              cpu: tuple[float, float]) -> None:
    """Keep the round with the least user + system CPU of *kind* on *server*."""
    key = (kind, server)
    if key not in best or sum(cpu) < sum(best[key]):
        best[key] = cpu


def measure(server: Server, image: storm.Image, kind: str, n: int, token_path: str | None,
            basic: str) -> tuple[float, float]:
    """ms of user and system CPU per request of *kind*, *n* requests on one connection."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    bearer = "Bearer static"
    if token_path is not None:
        conn.request("GET", token_path, headers={"Authorization": basic})
        bearer = "Bearer " + json.loads(conn.getresponse().read())["token"]
    path, headers = requests_for(kind, image, token_path, basic, bearer)
    buf = bytearray(MIB)
    u0, s0 = cpu_split(server.pid)
    for _ in range(n):
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        while resp.readinto(buf):
            pass
        if resp.status != 200:
            raise RuntimeError(f"{server.name} {kind}: HTTP {resp.status}")
    u1, s1 = cpu_split(server.pid)
    conn.close()
    return (u1 - u0) * 1000 / n, (s1 - s0) * 1000 / n


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--requests", type=int, default=2000, help="per kind and round (blob: "
                   "scaled down by its size)")
    p.add_argument("--layer-mib", type=float, default=6.0)
    p.add_argument("--base-src", type=Path, action="append", default=[],
                   help="A/B: also measure the strata of another checkout's src dir "
                        "('strata-base'; given again: 'strata-base2', ...)")
    p.add_argument("--kinds", default=",".join(KINDS))
    args = p.parse_args(argv)
    kinds = [k for k in KINDS if k in args.kinds.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="strata-bench-storm-cpu-"))
    image = storm.make_image(5, int(args.layer_mib * MIB))
    basic = "Basic " + b64encode(f"admin:{storm.PASSWORD}".encode()).decode()
    token = f"/auth/token?service=strata&scope=repository:{storm.REPO}:pull"
    strata = storm.strata_with_auth(workdir, 1)
    targets: list[tuple[Server, str | None]] = [(strata, token)]
    for i, src in enumerate(args.base_src):
        name = "strata-base" if i == 0 else f"strata-base{i + 1}"
        targets.append((storm.strata_with_auth(workdir, 1, name, src), token))
    started: list[Server] = []
    best: dict[tuple[str, str], tuple[float, float]] = {}
    try:
        for server, _ in targets:
            server.start(timeout=60)
            started.append(server)
            storm.push(server.base, image, basic)
        nginx = storm.nginx_server(workdir, image,
                                   storm.strata_blob_paths(strata.data_dir, image), 1)
        nginx.start()
        started.append(nginx)
        targets.append((nginx, "/auth/token"))
        load = os.getloadavg()
        for kind in kinds:
            n = args.requests if kind != "blob" else max(
                20, int(args.requests * 0.5 / max(args.layer_mib, 0.5)))
            for server, token_path in targets:  # warm: page cache, connections, caches
                measure(server, image, kind, 10, token_path, basic)
            for _ in range(args.rounds):
                for server, token_path in targets:
                    keep_best(best, kind, server.name,
                              measure(server, image, kind, n, token_path, basic))
    finally:
        for server in started:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    names = [server.name for server, _ in targets]
    print(f"server CPU per request, ms (user + system, best of {args.rounds} rounds; one "
          f"connection, requests one after the other; strata --workers 1 with auth; load "
          f"{load[0]:.1f} -> {os.getloadavg()[0]:.1f})")
    print("| request | " + " | ".join(names) + " | strata / nginx |")
    print("| --- |" + " --- |" * (len(names) + 1))
    pull = dict.fromkeys(names, 0.0)
    for kind in kinds:
        cells = []
        for name in names:
            u, s = best[(kind, name)]
            cells.append(f"{u + s:.3f} ({u:.3f} + {s:.3f})")
            pull[name] += (u + s) * (5 if kind == "blob" else 1)
        ratio = sum(best[(kind, "strata")]) / max(sum(best[(kind, "nginx")]), 1e-9)
        print(f"| {kind} | " + " | ".join(cells) + f" | {ratio:.1f}x |")
    if kinds == list(KINDS):
        print("| a pull (token, manifest, config, 5 blobs) | "
              + " | ".join(f"{pull[n]:.2f}" for n in names)
              + f" | {pull['strata'] / max(pull['nginx'], 1e-9):.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
