"""Registry use-cases (OCI Distribution Spec v1.1) with no HTTP in them."""
