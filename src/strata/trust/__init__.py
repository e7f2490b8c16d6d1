"""Trust in released content: release keys and cosign signatures, SBOMs, provenance, verify."""
