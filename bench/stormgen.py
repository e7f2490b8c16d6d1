"""One load-generator process of the pull storm (``storm.py --generator python`` runs several).

Each of ``--clients`` connections walks whole pulls in podman's order, over and over until
``--duration`` is up: a new token (GET ``--token-path`` with ``--auth``; skipped if empty),
the manifest by tag, the config, the layers, each with ``Authorization: Bearer TOKEN``. Every
answer must be 200 with the expected length; anything else is an error and the client opens a
new connection and starts a new pull.

Why not wrk + Lua: wrk hands the body of every answer to Lua's ``response()`` as one string as
soon as the script defines it (needed to read the token), and on this machine that costs it
~4x the CPU per byte of plain wrk (0.52 cores for 261 MiB/s against nginx, where plain wrk
moves 1.09 GB/s on 0.58): the load generator became the limit. Here bodies go straight from
the socket into one reused buffer (``asyncio.BufferedProtocol``, ``recv_into``): only the
kernel's copy is paid; the small bodies (token, manifest) are kept, blobs are only counted.

Output: one JSON object on stdout (pulls finished in time, per-pull and per-request seconds,
errors with samples, bytes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

BUF = 1 << 18
KEEP = 1 << 16  # bodies up to this size are kept (token, manifest, config)
ACCEPT = ("application/vnd.oci.image.manifest.v1+json, "
          "application/vnd.docker.distribution.manifest.v2+json")


class Conn(asyncio.BufferedProtocol):
    """One HTTP/1.1 keep-alive connection, one request at a time, Content-Length bodies."""

    def __init__(self) -> None:
        self.buf = bytearray(BUF)
        self.view = memoryview(self.buf)
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[tuple[int, bytes, int]] | None = None
        self.head = bytearray()
        self.body = bytearray()
        self.remaining = -1  # -1: reading the head
        self.status = 0
        self.size = 0
        self.keep = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError(f"connection lost: {exc}"))

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.view

    def buffer_updated(self, nbytes: int) -> None:
        data = self.view[:nbytes]
        if self.remaining < 0:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = bytes(self.head[:end]).split(b"\r\n")
            rest = self.head[end + 4:]
            self.status = int(lines[0].split()[1])
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            self.size, self.remaining = length, length
            self.keep = length <= KEEP
            self.head = bytearray()
            self.body = bytearray()
            data = memoryview(rest)
        if data:
            if self.keep:
                self.body += data
            self.remaining -= len(data)
        if self.remaining <= 0 and self.waiter is not None and not self.waiter.done():
            self.waiter.set_result((self.status, bytes(self.body), self.size))

    async def get(self, host: str, path: str, headers: dict[str, str]) -> tuple[int, bytes, int]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.remaining = -1
        lines = [f"GET {path} HTTP/1.1", f"Host: {host}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        self.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        return await self.waiter


async def client(args: argparse.Namespace, blobs: list[tuple[str, int]], end: float,
                 out: dict[str, Any]) -> None:
    loop = asyncio.get_running_loop()
    host = f"{args.host}:{args.port}"
    conn: Conn | None = None
    while time.monotonic() < end:
        try:
            if conn is None or conn.transport is None or conn.transport.is_closing():
                _, conn = await loop.create_connection(Conn, args.host, args.port)
            t0 = time.monotonic()
            auth: dict[str, str] = {}
            if args.token_path:
                r0 = time.monotonic()
                status, body, _ = await conn.get(
                    host, args.token_path, {"Authorization": args.auth} if args.auth else {})
                out["requests"].append(time.monotonic() - r0)
                if status != 200:
                    raise ValueError(f"token: HTTP {status}")
                answer = json.loads(body)
                auth = {"Authorization": "Bearer " + (answer.get("token")
                                                      or answer["access_token"])}
            r0 = time.monotonic()
            status, body, size = await conn.get(
                host, f"/v2/{args.repo}/manifests/{args.tag}", {**auth, "Accept": ACCEPT})
            out["requests"].append(time.monotonic() - r0)
            if status != 200 or size != args.manifest_size:
                raise ValueError(f"manifest: HTTP {status}, {size} bytes")
            out["bytes"] += size
            for digest, want in blobs:
                r0 = time.monotonic()
                status, _, size = await conn.get(host, f"/v2/{args.repo}/blobs/{digest}", auth)
                out["requests"].append(time.monotonic() - r0)
                if status != 200 or size != want:
                    raise ValueError(f"blob: HTTP {status}, {size} bytes, not {want}")
                out["bytes"] += size
            done = time.monotonic()
            if done <= end:
                out["pulls"].append(done - t0)
        except (OSError, ValueError, KeyError) as exc:
            out["errors"] += 1
            if len(out["samples"]) < 5:
                out["samples"].append(str(exc))
            if conn is not None and conn.transport is not None:
                conn.transport.close()
            conn = None
    if conn is not None and conn.transport is not None:
        conn.transport.close()


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    blobs = [(d, int(s)) for d, _, s in (b.rpartition(":") for b in args.blobs.split(","))]
    out: dict[str, Any] = {"pulls": [], "requests": [], "errors": 0, "samples": [],
                           "bytes": 0, "start": time.time()}
    end = time.monotonic() + args.duration
    tasks = [asyncio.create_task(client(args, blobs, end, out)) for _ in range(args.clients)]
    # In-flight pulls at the end do not count; give them no more than a grace period.
    _, pending = await asyncio.wait(tasks, timeout=args.duration + args.grace)
    for t in pending:
        t.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    out["duration_s"] = args.duration
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--clients", type=int, required=True)
    p.add_argument("--duration", type=float, required=True)
    p.add_argument("--grace", type=float, default=5.0)
    p.add_argument("--repo", required=True)
    p.add_argument("--tag", required=True)
    p.add_argument("--token-path", default="")
    p.add_argument("--auth", default="")
    p.add_argument("--manifest-size", type=int, required=True)
    p.add_argument("--blobs", required=True, help="digest:size,... (config first)")
    args = p.parse_args()
    print(json.dumps(asyncio.run(main_async(args))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
