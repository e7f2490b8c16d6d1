"""Memory of ``strata serve --workers 2`` (auth on) beside distribution's (issue #18).

Per target, one after the other, on a fresh data dir:

* ``idle``: summed PSS and RSS of the server's process tree once it answers and has taken one
  small image, with each process's ``smaps_rollup`` split (anonymous / file PSS, private and
  shared bytes): where the memory is;
* ``storm``: the release-day pull storm of ``storm.py`` (``--clients`` connections, python
  load generator, a token per pull for strata) with peak PSS/RSS sampled every
  ``--pss-interval`` s;
* ``push``: one ``--push-mib`` blob pushed monolithically (``sendfile`` from tmpfs, Bearer
  token with push scope for strata), peak PSS/RSS sampled the same way.

PSS (proportional set size) splits each page shared by the parent and its forked workers
between them, so the summed PSS of the tree counts such a page once; summed RSS counts it once
per process. Target (issue #18): strata's peak PSS ≤ 100 MiB in the storm and in the push.

    .venv/bin/python bench/memory.py                      # strata and distribution, defaults
    .venv/bin/python bench/memory.py --targets strata --clients 50 --duration 10 --push-mib 256
    # A/B: target "base" is strata from another checkout's src (PYTHONPATH), interleaved
    .venv/bin/python bench/memory.py --targets base,strata,base,strata --base-src /work/main/src \
        --clients 50 --duration 20
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.request
from base64 import b64encode
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import blobdata
import procmem
import storm
from rawpush import RawClient, blob_file
from servers import Server, distribution_server

MIB = 1 << 20
ROLLUP_KEYS = ("Rss", "Pss", "Pss_Anon", "Pss_File", "Shared_Clean", "Shared_Dirty",
               "Private_Clean", "Private_Dirty", "Anonymous")


def rollup(pid: int) -> dict[str, int]:
    """``/proc/PID/smaps_rollup`` in KiB (empty if the process is gone)."""
    out: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ROLLUP_KEYS:
                out[key] = int(rest.split()[0])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return out


def tree(root: int) -> list[tuple[int, str, dict[str, int]]]:
    """(pid, role, smaps_rollup) for the root and every process below it."""
    rows = []
    for pid in procmem.descendants(root):
        rows.append((pid, "parent" if pid == root else "worker", rollup(pid)))
    return rows


def token(base: str, basic: str, scope: str) -> str:
    req = urllib.request.Request(f"{base}/auth/token?service=strata&scope={scope}",
                                 headers={"Authorization": basic})
    with urllib.request.urlopen(req, timeout=60) as resp:
        answer = json.load(resp)
    return str(answer.get("token") or answer["access_token"])


class AuthRawClient(RawClient):
    """``rawpush.RawClient`` sending one Authorization header with every request."""

    def __init__(self, base: str, authorization: str | None) -> None:
        super().__init__(base)
        self.authorization = authorization

    def _send(self, method: str, url: str, headers: dict[str, str],  # type: ignore[override]
              body: Any = None) -> Any:
        if self.authorization:
            headers = {**headers, "Authorization": self.authorization}
        return super()._send(method, url, headers, body)


def idle(server: Server) -> dict[str, Any]:
    time.sleep(2.0)  # start-up garbage settled, workers listening
    procs = tree(server.pid)
    return {"pss_mib": sum(r.get("Pss", 0) for _, _, r in procs) / 1024,
            "rss_mib": sum(r.get("Rss", 0) for _, _, r in procs) / 1024,
            "processes": [{"pid": pid, "role": role, **{k: round(v / 1024, 1)
                                                          for k, v in r.items()}}
                          for pid, role, r in procs]}


def storm_phase(server: Server, image: storm.Image, args: argparse.Namespace, workdir: Path,
                token_path: str, auth: str) -> dict[str, Any]:
    # Warm-up, not sampled (as storm.py): each worker's first Basic login runs argon2id
    # (64 MiB for ~0.1 s, then unmapped); later logins within the login cache's TTL do not.
    storm.run_python(server.base, image, min(4, args.clients), min(4, args.threads), 3,
                     token_path, auth, workdir / f"{server.name}-warmup.json")
    with storm.MemSampler(server.pid, args.pss_interval) as mem:
        res, _cpu = storm.run_python(server.base, image, args.clients, args.threads,
                                     args.duration, token_path, auth,
                                     workdir / f"{server.name}-storm.json")
    return {"pulls": res["pulls"], "errors": res["errors"],
            "peak_pss_mib": mem.peak_pss / MIB, "peak_rss_mib": mem.peak_rss / MIB,
            "samples": mem.samples, "series": mem.series}


def push_phase(server: Server, blob: Path, digest: str, authorization: str | None,
               args: argparse.Namespace) -> dict[str, Any]:
    client = AuthRawClient(server.base, authorization)
    try:
        with storm.MemSampler(server.pid, args.pss_interval) as mem:
            t0 = time.perf_counter()
            client.push_monolithic("bench/huge", blob, digest)
            secs = time.perf_counter() - t0
    finally:
        client.close()
    return {"mib_s": args.push_mib / secs, "peak_pss_mib": mem.peak_pss / MIB,
            "peak_rss_mib": mem.peak_rss / MIB, "samples": mem.samples, "series": mem.series}


def _pair(phase: dict[str, Any] | None) -> str:
    return f"{phase['peak_pss_mib']:.0f} / {phase['peak_rss_mib']:.0f}" if phase else "-"


def table(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    out = ["| target | idle PSS / RSS (MiB) | storm peak PSS / RSS (MiB) | storm pulls (errors) "
           f"| {args.push_mib} MiB push peak PSS / RSS (MiB) | push MiB/s |",
           "| --- | --- | --- | ---: | --- | ---: |"]
    for r in rows:
        i, s, p = r["idle"], r.get("storm"), r.get("push")
        pulls = f"{s['pulls']} ({s['errors']})" if s else "-"
        rate = f"{p['mib_s']:.0f}" if p else "-"
        out.append(f"| {r['label']} | {i['pss_mib']:.0f} / {i['rss_mib']:.0f} | {_pair(s)} "
                   f"| {pulls} | {_pair(p)} | {rate} |")
    return "\n".join(out)


def breakdown(rows: list[dict[str, Any]]) -> str:
    keys = ("Pss", "Pss_Anon", "Pss_File", "Rss", "Private_Dirty", "Shared_Clean",
            "Shared_Dirty", "Anonymous")
    out = ["| target | process | " + " | ".join(keys) + " |",
           "| --- | --- |" + " ---: |" * len(keys)]
    for r in rows:
        for p in r["idle"]["processes"]:
            out.append(f"| {r['label']} | {p['role']} {p['pid']} | "
                       + " | ".join(f"{p.get(k, 0):.1f}" for k in keys) + " |")
    return "\n".join(out)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--targets", default="strata,distribution")
    p.add_argument("--workers", type=int, default=2, help="strata serve --workers")
    p.add_argument("--clients", type=int, default=200, help="storm connections")
    p.add_argument("--duration", type=int, default=30, help="storm seconds per target")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 2,
                   help="storm load-generator processes")
    p.add_argument("--layers", type=int, default=5)
    p.add_argument("--layer-mib", type=float, default=6.0)
    p.add_argument("--push-mib", type=int, default=1024, help="size of the pushed blob")
    p.add_argument("--pss-interval", type=float, default=0.5)
    p.add_argument("--phases", default="storm,push")
    p.add_argument("--keep", action="store_true", help="keep the work dir")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    p.add_argument("--base-src", type=Path, default=None,
                   help="the src dir of another checkout: strata for the target 'base'")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    phases = {t.strip() for t in args.phases.split(",") if t.strip()}
    workdir = Path(tempfile.mkdtemp(prefix="strata-bench-memory-"))
    image = storm.make_image(args.layers, int(args.layer_mib * MIB))
    basic = "Basic " + b64encode(f"admin:{storm.PASSWORD}".encode()).decode()
    blob = blob_file(4242, args.push_mib * MIB) if "push" in phases else None
    digest = blobdata.digest(4242, args.push_mib * MIB) if blob else ""
    rows: list[dict[str, Any]] = []
    load0 = os.getloadavg()
    try:
        for n, name in enumerate(targets):
            sub = workdir / f"{n}-{name}"
            sub.mkdir()
            if name in ("strata", "base"):
                if name == "base" and args.base_src is None:
                    raise SystemExit("memory: target 'base' needs --base-src")
                server = storm.strata_with_auth(sub, args.workers, name=name,
                                                src=args.base_src if name == "base" else None)
                label = (f"strata{' (base: ' + str(args.base_src) + ')' if name == 'base' else ''}"
                         f", auth on, `--workers {args.workers}`")
                auth, token_path = basic, (f"/auth/token?service=strata&scope=repository:"
                                           f"{storm.REPO}:pull")
            else:
                server = distribution_server(sub)
                label, auth, token_path = "distribution 2.8", "", ""
            server.start()
            try:
                storm.push(server.base, image, auth or None)
                row: dict[str, Any] = {"name": name, "label": label,
                                       "load_at_start": os.getloadavg()[0],
                                       "idle": idle(server)}
                print(f"{name}: idle PSS {row['idle']['pss_mib']:.0f} MiB", file=sys.stderr)
                if "storm" in phases:
                    row["storm"] = storm_phase(server, image, args, sub, token_path, auth)
                    print(f"{name}: storm {row['storm']}", file=sys.stderr)
                if blob is not None:
                    scope = "repository:bench/huge:pull,push"
                    bearer = (f"Bearer {token(server.base, basic, scope)}"
                              if name in ("strata", "base") else None)
                    os.sync()
                    row["push"] = push_phase(server, blob, digest, bearer, args)
                    print(f"{name}: push {row['push']}", file=sys.stderr)
                rows.append(row)
            finally:
                server.stop()
    finally:
        if blob is not None:
            blob.unlink(missing_ok=True)
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"memory: storm {args.clients} clients x {args.duration} s, image "
          f"{image.size / MIB:.0f} MiB; push {args.push_mib} MiB monolithic; PSS sampled every "
          f"{args.pss_interval} s; load average at start {load0[0]:.2f} {load0[1]:.2f}")
    print(table(rows, args))
    print()
    print("idle, per process (MiB, smaps_rollup):")
    print(breakdown(rows))
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                         "load_at_start": load0, "rows": rows}, indent=1))
    bad = [r["name"] for r in rows if r.get("storm", {}).get("errors")]
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
