"""Test support shared by the tiers that drive real processes.

- :mod:`support.server`: :class:`~support.server.StrataServer`, a ``strata serve`` subprocess on a
  free loopback port (server, interop, crash and bench tests).
- :mod:`support.clients`: finding the real OCI clients (skopeo, podman, buildah, umoci), per-test
  podman/buildah configuration, and a busybox image layout built with umoci.

``tests/`` is on ``sys.path`` through ``tests/conftest.py``, so import as ``from support.server
import StrataServer``.
"""
