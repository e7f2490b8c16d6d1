"""A load generator run as its own process (so its threads do not share the test's GIL):
``python flood.py PORT JOBS.json``. JOBS.json: {"threads": N, "jobs": [[method, path,
body_file_or_null, {headers}], ...]}; the threads take jobs in turn, each on its own keep-alive
connection. Prints "go" once every body is loaded, then one JSON line: the statuses."""

from __future__ import annotations

import http.client
import json
import sys
import threading
from pathlib import Path


def main() -> None:
    port, spec = int(sys.argv[1]), json.loads(Path(sys.argv[2]).read_text())
    bodies = {f: Path(f).read_bytes() for _, _, f, _ in spec["jobs"] if f}
    jobs = list(spec["jobs"])
    lock = threading.Lock()
    statuses: list[int] = []

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while True:
            with lock:
                if not jobs:
                    break
                method, path, body_file, headers = jobs.pop(0)
            conn.request(method, path, body=bodies[body_file] if body_file else None,
                         headers=headers)
            resp = conn.getresponse()
            resp.read()
            with lock:
                statuses.append(resp.status)
            if resp.getheader("Connection", "").lower() == "close":
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(spec["threads"])]
    print("go", flush=True)
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps(statuses), flush=True)


if __name__ == "__main__":
    main()
