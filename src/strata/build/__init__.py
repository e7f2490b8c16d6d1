"""Builder: Containerfile to a reproducible OCI image.

:mod:`strata.build.containerfile` parses Containerfiles (Dockerfile syntax, per the
Dockerfile reference) into frozen instruction values; :mod:`strata.build.ignore` reads
``.containerignore`` / ``.dockerignore`` files for :mod:`strata.build.context`; the layer
building blocks live in :mod:`strata.image`.
"""
