"""Pure OCI data: digests, names and references, media types, manifests. No I/O."""
