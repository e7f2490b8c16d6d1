"""Blob pushes whose client is not the bottleneck: bodies go from a file with ``sendfile``.

The aiohttp client of ``workloads`` copies every body through Python and tops out near the
speed of the registries it measures; here the body bytes never enter the process (the kernel
copies them from the page cache of a file on tmpfs into the socket), and requests and responses
go through ``http.client`` on one keep-alive connection. Each push runs on a thread so the
benchmark's event loop stays free. Both registries get exactly the same requests.
"""

from __future__ import annotations

import http.client
import os
import tempfile
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote, urlsplit

import blobdata
from workloads import ProtocolError


def blob_file(seed: int, size: int, directory: Path | None = None) -> Path:
    """Write blob ``seed`` (see ``blobdata``) to a file, preferably on tmpfs."""
    base = directory or (Path("/dev/shm") if Path("/dev/shm").is_dir() else None)
    fd, name = tempfile.mkstemp(prefix=f"strata-bench-{seed}-", dir=base)
    with os.fdopen(fd, "wb") as f:
        for piece in blobdata.iter_chunks(seed, size):
            f.write(piece)
    return Path(name)


class RawClient:
    def __init__(self, base: str) -> None:
        parts = urlsplit(base)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=300)

    def close(self) -> None:
        self.conn.close()

    def _send(self, method: str, url: str, headers: dict[str, str],
              body: tuple[BinaryIO, int, int] | None = None) -> http.client.HTTPResponse:
        """One request; ``body`` is (file, offset, count), sent with sendfile."""
        self.conn.putrequest(method, url, skip_accept_encoding=True)
        for k, v in headers.items():
            self.conn.putheader(k, v)
        self.conn.putheader("Content-Length", str(body[2] if body else 0))
        self.conn.endheaders()
        if body is not None:
            f, offset, count = body
            sock = self.conn.sock
            assert sock is not None
            if sock.sendfile(f, offset, count) != count:
                raise ProtocolError("sendfile sent less than the body")
        resp = self.conn.getresponse()
        resp.read()
        return resp

    def _path(self, location: str | None) -> str:
        if not location:
            raise ProtocolError("no Location header")
        parts = urlsplit(location)
        return parts.path + (f"?{parts.query}" if parts.query else "")

    def _start(self, repo: str) -> str:
        resp = self._send("POST", f"/v2/{repo}/blobs/uploads/", {})
        if resp.status != 202:
            raise ProtocolError(f"POST upload -> {resp.status}")
        return self._path(resp.getheader("Location"))

    @staticmethod
    def _with_digest(path: str, digest: str) -> str:
        return path + ("&" if "?" in path else "?") + "digest=" + quote(digest, safe="")

    def push_monolithic(self, repo: str, path: Path, digest: str) -> None:
        size = path.stat().st_size
        loc = self._start(repo)
        with path.open("rb") as f:
            resp = self._send("PUT", self._with_digest(loc, digest),
                              {"Content-Type": "application/octet-stream"},
                              (f, 0, size))
        if resp.status != 201:
            raise ProtocolError(f"PUT blob -> {resp.status}")

    def push_chunked(self, repo: str, path: Path, digest: str, chunk: int) -> None:
        size = path.stat().st_size
        loc = self._start(repo)
        with path.open("rb") as f:
            for start in range(0, size, chunk):
                n = min(chunk, size - start)
                resp = self._send("PATCH", loc,
                                  {"Content-Type": "application/octet-stream",
                                   "Content-Range": f"{start}-{start + n - 1}"},
                                  (f, start, n))
                if resp.status != 202:
                    raise ProtocolError(f"PATCH at {start} -> {resp.status}")
                loc = self._path(resp.getheader("Location"))
        resp = self._send("PUT", self._with_digest(loc, digest), {})
        if resp.status != 201:
            raise ProtocolError(f"closing PUT -> {resp.status}")
