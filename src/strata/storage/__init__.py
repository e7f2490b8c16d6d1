"""Blob stores: bytes by digest. They know nothing of repositories, manifests or tags."""
