"""Build jobs: the runner that takes jobs from the queue in the database
(:mod:`strata.meta.build_store`) and builds them from their registered source
(:mod:`strata.jobs.runner`), inside ``strata serve`` or in ``strata worker`` processes."""
