"""User and group names of the image being built (``--chown``, ``WORKDIR`` ownership).

Dockerfile reference, "COPY --chown": ``user[:group]`` by name or number, names looked up
in the image's ``/etc/passwd`` and ``/etc/group``; "a username without groupname or a UID
without GID will use the same numeric UID as the GID".
"""

from __future__ import annotations

from strata.build.errors import BuildError
from strata.build.fsview import MergedView

__all__ = ["resolve_owner", "resolve_user"]


def _table(view: MergedView, path: str, fields: int) -> list[list[str]]:
    data = view.read(path)
    if data is None:
        return []
    rows = []
    for line in data.decode("utf-8", "replace").splitlines():
        if line.strip() and not line.startswith("#"):
            row = line.split(":")
            if len(row) >= fields:
                rows.append(row)
    return rows


def _uid(view: MergedView, user: str, line: int | None) -> tuple[int, int | None]:
    if user.isdigit():
        return int(user), None
    for row in _table(view, "/etc/passwd", 4):
        if row[0] == user:
            return int(row[2]), int(row[3])
    raise BuildError(f"unknown user {user!r}: not in the image's /etc/passwd", line=line)


def _gid(view: MergedView, group: str, line: int | None) -> int:
    if group.isdigit():
        return int(group)
    for row in _table(view, "/etc/group", 3):
        if row[0] == group:
            return int(row[2])
    raise BuildError(f"unknown group {group!r}: not in the image's /etc/group", line=line)


def resolve_owner(spec: str, view: MergedView, line: int | None = None) -> tuple[int, int]:
    """``--chown`` value -> ``(uid, gid)``."""
    user, sep, group = spec.partition(":")
    if not user:
        raise BuildError(f"invalid --chown {spec!r}", line=line)
    uid, _ = _uid(view, user, line)
    return uid, _gid(view, group, line) if sep and group else uid


def resolve_user(spec: str, view: MergedView, line: int | None = None) -> tuple[int, int]:
    """``USER`` value -> ``(uid, gid)`` the way a runtime does (primary group from passwd)."""
    if not spec:
        return 0, 0
    user, sep, group = spec.partition(":")
    uid, primary = _uid(view, user, line)
    gid = _gid(view, group, line) if sep and group else (primary or 0)
    return uid, gid
