"""Builder: Containerfile to a reproducible OCI image.

:mod:`strata.build.containerfile` parses Containerfiles (Dockerfile syntax, per the
Dockerfile reference) into frozen instruction values and reads ``.containerignore`` /
``.dockerignore`` files; the layer building blocks live in :mod:`strata.image`.
"""
