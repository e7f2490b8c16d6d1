"""The one error a build reports: what went wrong, where, and with which exit code.

Exit codes of ``strata build`` (documented in README's build section):

* ``1`` -- the build failed (registry errors, sandbox setup, ``--verify`` found two
  different digests, ...);
* ``2`` -- the input is wrong: a usage error (click), the label policy, a refused
  ``LABEL release=``;
* ``3`` -- a build step failed: a ``RUN`` command exited non-zero (its own code is in
  the message).
"""

from __future__ import annotations

__all__ = ["EXIT_FAILED", "EXIT_INPUT", "EXIT_STEP_FAILED", "BuildError"]

EXIT_FAILED = 1
EXIT_INPUT = 2
EXIT_STEP_FAILED = 3


class BuildError(Exception):
    """A build failed.

    ``line`` is the Containerfile line (1-based) when the failure belongs to an
    instruction; ``exit_code`` is what ``strata build`` exits with (see above);
    ``output`` is the failing command's output, if any.
    """

    def __init__(
        self, message: str, *, line: int | None = None, exit_code: int = EXIT_FAILED,
        output: str = ""
    ) -> None:
        self.message = message
        self.line = line
        self.exit_code = exit_code
        self.output = output
        super().__init__(f"line {line}: {message}" if line is not None else message)
