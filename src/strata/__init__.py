"""strata: build, release and serve layered container images."""
