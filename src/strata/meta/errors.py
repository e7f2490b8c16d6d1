"""What the metadata layer tells its callers when the database refuses a write."""

from __future__ import annotations


class Conflict(Exception):
    """A write lost a uniqueness race (the database's integrity error, in the project's own
    terms): another transaction inserted the same key first. Callers map it to their domain
    answer (the registry and the release engine: ``Code.CONFLICT``, "try again").

    ``detail`` is the driver's message, cut to 300 characters (for logs and error details).
    """

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail[:300]
