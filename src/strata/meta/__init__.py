"""Metadata: repositories, blobs known to them, manifests, tags and upload sessions, in SQL."""
