"""What a podman/skopeo user puts in ``policy.json`` and ``registries.d`` to require strata's
release signatures (containers-policy.json(5), containers-registries.d(5)).

- ``policy.json``: a ``sigstoreSigned`` requirement for the scope ``HOST/<namespace>`` (every
  repository under the namespace), with the namespace's public keys inline (``keyData``:
  base64 of the PEM; ``keyDatas`` when there are several -- the current key and the retired
  ones, so older releases still verify). ``signedIdentity`` is ``matchRepository`` (a
  signature names ``host/repository``, no tag: any tag or digest of that repository is
  accepted). When the host a client pulls from is not the one strata signs for (a mirror, an
  internal name), each image repository gets its own scope with ``exactRepository`` naming
  the signed repository (any tag or digest accepted), and the namespace scope is ``reject``:
  ``remapIdentity`` cannot serve (containers/image matches it as ``matchRepoDigestOrExact``,
  which never accepts a signature naming a repository without tag or digest -- a real skopeo
  refused both a tag and a digest pull that way), so an image added later is refused until
  the policy is printed again (fail closed).
- ``registries.d``: ``use-sigstore-attachments: true`` for the host, so clients fetch the
  ``sha256-<hex>.sig`` signatures.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any


def requirement(public_pems: Sequence[str]) -> dict[str, Any]:
    """The ``sigstoreSigned`` requirement of the scope strata signs for (``host/namespace``):
    the keys, and a signature naming the repository pulled."""
    if not public_pems:
        raise ValueError("no public key to require")
    datas = [base64.b64encode(pem.encode()).decode() for pem in public_pems]
    req: dict[str, Any] = {"type": "sigstoreSigned"}
    if len(datas) == 1:
        req["keyData"] = datas[0]
    else:
        req["keyDatas"] = datas
    req["signedIdentity"] = {"type": "matchRepository"}
    return req


def repository_requirement(public_pems: Sequence[str], signed_repository: str
                           ) -> dict[str, Any]:
    """The requirement of one repository reached under another name: the signature must name
    ``signed_repository`` (any tag or digest)."""
    req = requirement(public_pems)
    req["signedIdentity"] = {"type": "exactRepository", "dockerRepository": signed_repository}
    return req


def policy(public_pems: Sequence[str], scope: str, signed_scope: str, *,
           repositories: Sequence[str] = (),
           default: str = "insecureAcceptAnything") -> dict[str, Any]:
    """A whole ``policy.json``: ``default`` for everything else (``reject`` to refuse it).
    ``repositories`` (``<namespace>/<name>``): with a ``scope`` other than ``signed_scope``,
    one exact-repository entry each, and the rest of the namespace refused."""
    if scope == signed_scope:
        return {"default": [{"type": default}],
                "transports": {"docker": {scope: [requirement(public_pems)]}}}
    requirement(public_pems)  # there is a key to require
    docker: dict[str, Any] = {scope: [{"type": "reject"}]}
    host, signed_host = scope.split("/", 1)[0], signed_scope.split("/", 1)[0]
    for repository in repositories:
        docker[f"{host}/{repository}"] = [repository_requirement(
            public_pems, f"{signed_host}/{repository}")]
    return {"default": [{"type": default}], "transports": {"docker": docker}}


def registries_d(host: str) -> str:
    """The ``registries.d`` YAML snippet for ``host``."""
    return f"docker:\n  {host}:\n    use-sigstore-attachments: true\n"
