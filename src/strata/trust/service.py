"""Release keys of a namespace, for the API and the CLI: list (creating the first key when a
namespace has none), rotate, and the client configuration that requires them.

Rotation: a new key becomes ``current`` and signs every release from then on; the previous
one is ``retired`` -- still listed, still served at ``/keys/<ns>.pub``, and still in the
client policy, so every signature it made stays valid.
"""

from __future__ import annotations

from typing import Any

from strata.meta.key_store import KeyRecord, KeyStore, KeyWriter
from strata.release.model import not_found
from strata.trust import policy
from strata.trust.signer import TrustSigner


class TrustService:
    def __init__(self, store: KeyStore, signer: TrustSigner) -> None:
        self.store = store
        self.signer = signer

    async def keys(self, namespace: str) -> list[KeyRecord]:
        """The namespace's keys, current first; the first one is made if there is none (and
        signing is configured)."""
        found = await self.store.read(lambda tx: (tx.namespace_exists(namespace),
                                                  tx.keys(namespace)))
        exists, keys = found
        if not exists:
            raise not_found(f"unknown namespace {namespace!r}")
        if keys or not self.signer.configured:
            return keys
        now = self.store.now()
        record = self.signer.new_key(namespace, now, "release")

        def first(tx: KeyWriter) -> list[KeyRecord]:
            tx.namespace_exists(namespace, lock=True)
            if tx.current(namespace) is None:
                tx.add(record)
            return tx.keys(namespace)
        return await self.store.write(first)

    async def rotate(self, namespace: str, actor: str) -> KeyRecord:
        """A new current key for ``namespace``; the old one is retired (kept, published)."""
        now = self.store.now()
        record = self.signer.new_key(namespace, now, actor)

        def go(tx: KeyWriter) -> KeyRecord:
            if not tx.namespace_exists(namespace, lock=True):
                raise not_found(f"unknown namespace {namespace!r}")
            tx.add(record)
            return record
        return await self.store.write(go)

    def describe(self, namespace: str, keys: list[KeyRecord]) -> dict[str, Any]:
        """The JSON of ``GET /api/v1/namespaces/{ns}/keys``."""
        return {"namespace": namespace,
                "signed_identity": f"{self.signer.public_host}/{namespace}",
                "registry": self.signer.public_host,
                "keys": [k.to_json() for k in keys]}


def client_config(data: dict[str, Any], host: str | None,
                  repositories: list[str] | None = None) -> dict[str, Any]:
    """``policy.json`` and ``registries.d`` for the keys JSON ``data`` (from the API), for
    clients pulling from ``host`` (default: the registry strata signs for); ``repositories``:
    the namespace's images (each gets its own entry when ``host`` is another name)."""
    registry = str(data["registry"])
    host = host or registry
    namespace = str(data["namespace"])
    pems = [str(k["public_key"]) for k in data["keys"]]
    return {"policy": policy.policy(pems, f"{host}/{namespace}",
                                    str(data["signed_identity"]),
                                    repositories=repositories or ()),
            "registries_d": policy.registries_d(host), "host": host}
