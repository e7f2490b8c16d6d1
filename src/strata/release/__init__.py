"""Release streams: the pure rule book for tagging released images.

Every managed image repository (for example ``f25/cockpit``) carries three tag streams:

* the ``Name-Version-Release`` tag (``130-1.f25docker``): written once, never moved or deleted;
* the ``Name-Version`` tag (``130``): floats forward to the newest released build of that
  version;
* the ``Name`` tag (``latest``): floats forward to the newest released build of the newest
  supported (non end-of-life) version.

"Forward" is RPM version ordering, never time.  The modules here are pure (no I/O):

* :mod:`strata.release.rpmvercmp` -- rpm's ``rpmvercmp`` and version-then-release comparison;
* :mod:`strata.release.nvr` -- the ``NVR`` value type, parsing and validation;
* :mod:`strata.release.streams` -- planning releases and rollbacks, and the registry's write
  policy for managed repositories.
"""
