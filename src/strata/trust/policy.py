"""What a podman/skopeo user puts in ``policy.json`` and ``registries.d`` to require strata's
release signatures (containers-policy.json(5), containers-registries.d(5)).

- ``policy.json``: a ``sigstoreSigned`` requirement for the scope ``HOST/<namespace>`` (every
  repository under the namespace), with the namespace's public keys inline (``keyData``:
  base64 of the PEM; ``keyDatas`` when there are several -- the current key and the retired
  ones, so older releases still verify). ``signedIdentity`` is ``matchRepository`` (a
  signature names ``host/repository``, no tag: any tag or digest of that repository is
  accepted); when the host a client pulls from is not the one strata signs for (a mirror),
  ``remapIdentity`` maps the one prefix onto the other.
- ``registries.d``: ``use-sigstore-attachments: true`` for the host, so clients fetch the
  ``sha256-<hex>.sig`` signatures.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any


def requirement(public_pems: Sequence[str], scope: str, signed_scope: str) -> dict[str, Any]:
    """The ``sigstoreSigned`` requirement of ``scope`` (``host/namespace``)."""
    if not public_pems:
        raise ValueError("no public key to require")
    datas = [base64.b64encode(pem.encode()).decode() for pem in public_pems]
    req: dict[str, Any] = {"type": "sigstoreSigned"}
    if len(datas) == 1:
        req["keyData"] = datas[0]
    else:
        req["keyDatas"] = datas
    if scope == signed_scope:
        req["signedIdentity"] = {"type": "matchRepository"}
    else:
        req["signedIdentity"] = {"type": "remapIdentity", "prefix": scope,
                                 "signedPrefix": signed_scope}
    return req


def policy(public_pems: Sequence[str], scope: str, signed_scope: str, *,
           default: str = "insecureAcceptAnything") -> dict[str, Any]:
    """A whole ``policy.json``: ``default`` for everything else (``reject`` to refuse it)."""
    return {"default": [{"type": default}],
            "transports": {"docker": {scope: [requirement(public_pems, scope, signed_scope)]}}}


def registries_d(host: str) -> str:
    """The ``registries.d`` YAML snippet for ``host``."""
    return f"docker:\n  {host}:\n    use-sigstore-attachments: true\n"
