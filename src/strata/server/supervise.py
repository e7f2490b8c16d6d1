"""What ``strata serve --workers N`` becomes once its workers are forked: a supervisor that
forwards SIGTERM/SIGINT to them and waits for all of them to end (exit status 0).

The serving parent replaces itself with this script (``os.execv``; run as
``python -I -S supervise.py PID...``, importing only the standard library): the pages it
imported before forking go away with its old image, so the memory the workers share is
counted between them alone, and the copies the parent kept of pages both workers wrote
(reference counts, caches) are freed (issue #18: peak PSS; ``bench/memory.py``). The
workers stay this process's children (same pid), so it waits for them as before. SIGTERM and
SIGINT arrive blocked (the parent blocks them before ``execv``) and are unblocked once the
handlers are in place: a signal sent during the exec is delivered, not lost.
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType


def main(argv: list[str]) -> int:
    alive = {int(a) for a in argv}

    def stop(signum: int, _frame: FrameType | None) -> None:
        for pid in list(alive):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                alive.discard(pid)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    while alive:
        try:
            pid, _status = os.wait()
        except ChildProcessError:
            break
        alive.discard(pid)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
