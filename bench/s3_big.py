"""A blob larger than 5 GiB (AWS S3's single PUT/CopyObject limit) pushed to strata on S3 and
pulled back byte for byte.

    .venv/bin/python bench/s3_big.py [--size-mib 5632] [--part-size-mib 64] [--chunk-mib 0]

Starts ``rclone serve s3`` (``tests/support/s3.py``) and one ``strata serve --no-auth
--blob-store s3://…`` node, pushes ``--size-mib`` MiB of pseudo-random bytes (a 1 MiB random
block with its index stamped in, so nothing repeats and nothing is held in memory) as one
streamed PATCH (``--chunk-mib 0``) or in chunks, completes with PUT ?digest=, then pulls the
blob and compares size and sha256. Prints the timings as JSON. Needs about three times the
blob size free in the temp dir (rclone's in-progress multipart file, the completed upload, the
copy under the content address); the script checks first.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support.s3 import RcloneS3  # noqa: E402
from support.server import StrataServer  # noqa: E402

MiB = 1 << 20
REPO = "bench/big"


def block(seed: bytes, index: int) -> bytes:
    return index.to_bytes(8, "big") + seed[8:]


async def body(seed: bytes, first: int, count: int, hasher: hashlib._Hash,
               sent: list[int]) -> AsyncIterator[bytes]:
    for index in range(first, first + count):
        data = block(seed, index)
        hasher.update(data)
        sent[0] += len(data)
        yield data


async def run(size_mib: int, part_mib: int, chunk_mib: int, base: Path) -> dict[str, object]:
    seed = os.urandom(MiB)
    results: dict[str, object] = {"size_bytes": size_mib * MiB, "part_size_mib": part_mib,
                                  "chunk_mib": chunk_mib or "one streamed PATCH"}
    with RcloneS3() as s3:
        server = StrataServer(
            base / "node", "--no-auth", "--workers", "1", "--blob-store", s3.url("big/"),
            "--s3-part-size", str(part_mib * MiB), "--max-blob-size", str(64 << 30),
            "--body-timeout", "600",
            env={"AWS_ACCESS_KEY_ID": s3.access_key, "AWS_SECRET_ACCESS_KEY": s3.secret_key})
        server.start()
        try:
            timeout = aiohttp.ClientTimeout(total=None, sock_read=1800)
            async with aiohttp.ClientSession(server.url, timeout=timeout) as http:
                hasher = hashlib.sha256()
                sent = [0]
                t0 = time.monotonic()
                async with http.post(f"/v2/{REPO}/blobs/uploads/") as resp:
                    assert resp.status == 202, await resp.text()
                    location = resp.headers["Location"]
                step = chunk_mib or size_mib
                for first in range(0, size_mib, step):
                    count = min(step, size_mib - first)
                    headers = {"Content-Type": "application/octet-stream"}
                    if chunk_mib:
                        headers["Content-Range"] = f"{first * MiB}-{(first + count) * MiB - 1}"
                        headers["Content-Length"] = str(count * MiB)
                    async with http.patch(location, headers=headers,
                                          data=body(seed, first, count, hasher, sent)) as resp:
                        assert resp.status == 202, await resp.text()
                        location = resp.headers["Location"]
                t_sent = time.monotonic()
                digest = "sha256:" + hasher.hexdigest()
                sep = "&" if "?" in location else "?"
                async with http.put(f"{location}{sep}digest={digest}") as resp:
                    assert resp.status == 201, await resp.text()
                t_put = time.monotonic()
                pulled = hashlib.sha256()
                received = 0
                async with http.get(f"/v2/{REPO}/blobs/{digest}") as resp:
                    assert resp.status == 200, await resp.text()
                    async for chunk in resp.content.iter_chunked(4 * MiB):
                        pulled.update(chunk)
                        received += len(chunk)
                t_pulled = time.monotonic()
            results.update({
                "digest": digest, "pushed_bytes": sent[0], "pulled_bytes": received,
                "byte_for_byte": received == sent[0] and pulled.hexdigest() == hasher.hexdigest(),
                "push_body_s": round(t_sent - t0, 1),
                "put_complete_and_copy_s": round(t_put - t_sent, 1),
                "pull_s": round(t_pulled - t_put, 1),
                "push_MiB_per_s": round(size_mib / (t_put - t0), 1),
                "pull_MiB_per_s": round(size_mib / (t_pulled - t_put), 1),
            })
        except BaseException:
            print(server.log_path.read_text(errors="replace")[-6000:], file=sys.stderr)
            raise
        finally:
            server.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=5632)
    parser.add_argument("--part-size-mib", type=int, default=64)
    parser.add_argument("--chunk-mib", type=int, default=0,
                        help="PATCH chunk size (0: the whole blob in one streamed PATCH)")
    args = parser.parse_args()
    tmp = Path(tempfile.gettempdir())
    free = shutil.disk_usage(tmp).free
    if free < 3 * args.size_mib * MiB + (2 << 30):
        sys.exit(f"s3_big: {free >> 30} GiB free in {tmp}, need about "
                 f"{3 * args.size_mib // 1024 + 2} GiB")
    with tempfile.TemporaryDirectory(prefix="strata-s3-big-") as base:
        results = asyncio.run(run(args.size_mib, args.part_size_mib, args.chunk_mib, Path(base)))
    print(json.dumps(results, indent=2))
    if not results.get("byte_for_byte"):
        sys.exit(1)


if __name__ == "__main__":
    main()
