"""What ``strata serve --workers N`` becomes when it runs as PID 1 (a container's init) once its
workers are forked: a supervisor that forwards SIGTERM/SIGINT to them, waits for all of them to
end (exit status 0), and meanwhile reaps every process the kernel hands it, as an init must
(orphans of builds and clones would otherwise stay zombies).

Elsewhere the parent serves as the first worker (``runner.serve_beside``). As PID 1 it
replaces itself with this script (``os.execv``; run as ``python -I -S supervise.py PID...``,
importing only the standard library), so its imported memory goes with its old image. The
workers stay its children (same pid). SIGTERM and SIGINT arrive blocked (the parent blocks them
before ``execv``) and are unblocked once the handlers are in place: a signal sent during the
exec is delivered, not lost.
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
