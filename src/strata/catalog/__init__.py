"""Catalog: browse and search pages and the JSON API over released images (later issue)."""
