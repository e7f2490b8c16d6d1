"""Alembic migrations for the metadata schema (run by :func:`strata.meta.connection.migrate`)."""
