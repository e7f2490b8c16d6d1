"""Trust in released content (issue 16): release keys and cosign signatures, SBOMs,
provenance, verify.

- :mod:`.keys`: ECDSA P-256 key pairs, encrypted at rest with a passphrase (pure crypto).
- :mod:`.cosign`: the "simple signing" payload and the two stored forms of a signature
  (``sha256-<hex>.sig`` tag manifest and OCI 1.1 referrer), as bytes (pure data).
- :mod:`.signer`: :class:`~strata.trust.signer.TrustSigner`, which signs released digests
  inside the publish transaction (keys and manifests through :mod:`strata.meta.key_store`),
  and other release artifacts after it (``sign_artifact``).
- :mod:`.service`: keys of a namespace for the API and the CLI (list, rotate, client policy).
- :mod:`.policy`: the ``policy.json`` / ``registries.d`` a podman/skopeo user needs.

No HTTP here: the key routes are in :mod:`strata.server.api.keys`.
"""
