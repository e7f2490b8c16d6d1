"""The ``strata`` command line: thin commands over the use-cases."""
