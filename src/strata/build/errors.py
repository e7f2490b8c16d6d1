"""The one error a build reports: what went wrong, where, and with which exit code."""

from __future__ import annotations

__all__ = ["BuildError"]


class BuildError(Exception):
    """A build failed.

    ``line`` is the Containerfile line (1-based) when the failure belongs to an
    instruction; ``exit_code`` is what ``strata build`` exits with (a failing ``RUN``
    passes its own code through); ``output`` is the failing command's output, if any.
    """

    def __init__(
        self, message: str, *, line: int | None = None, exit_code: int = 1, output: str = ""
    ) -> None:
        self.message = message
        self.line = line
        self.exit_code = exit_code
        self.output = output
        super().__init__(f"line {line}: {message}" if line is not None else message)
