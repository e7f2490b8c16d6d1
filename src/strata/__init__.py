"""strata: build, release and serve layered container images."""

from strata.lazyimports import defer_isoduration, defer_rfc3987_syntax

defer_rfc3987_syntax()
defer_isoduration()
