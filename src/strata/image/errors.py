"""Exceptions raised by :mod:`strata.image`."""

from __future__ import annotations


class LayerError(Exception):
    """A layer could not be produced or applied."""


class UnsafePathError(LayerError):
    """A layer entry would write outside the destination root.

    Raised for absolute member names, ``..`` components and symlinks whose resolution
    would leave the root (OCI image-spec ``layer.md``, "Applying Changesets": a
    changeset only ever describes paths *inside* the root filesystem).
    """
