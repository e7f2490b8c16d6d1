"""Pure, reproducible building blocks for OCI image layers.

Nothing in this package talks to a registry or the network.  It turns directory trees
(plain build contexts or overlayfs upper directories) into deterministic layer tar
streams, compresses them, and applies layers back onto directories.

Specifications followed:

* OCI image-spec v1.1, ``layer.md`` -- "Distributable Format", "Change Types",
  "File Attributes", "Hardlinks", "Applying Changesets", "Whiteouts" and
  "Opaque Whiteout";
* OCI image-spec v1.1, ``config.md`` -- ``rootfs.diff_ids`` (sha256 of the
  *uncompressed* layer tar) and ``descriptor.md`` (digest and size of the blob);
* POSIX.1-2001 pax interchange format (``pax``) for tar headers;
* RFC 1952 (gzip) and RFC 8878 (zstd) for the compressed blobs;
* the reproducible-builds.org ``SOURCE_DATE_EPOCH`` specification for timestamps.

Modules:

* :mod:`strata.image.layer` -- :class:`Layer` and :func:`write_layer`; the public
  facade, re-exporting everything below that callers need;
* :mod:`strata.image.entries` -- :class:`TarEntry` values, explicit constructors
  (``COPY`` of single files, generated files, whiteouts) and the canonical sort order;
* :mod:`strata.image.scan` -- :func:`scan_tree` (plain trees) and :func:`diff_tree`
  (overlayfs upper directories);
* :mod:`strata.image.tarheader` -- the canonical pax/ustar header encoding;
* :mod:`strata.image.compression` -- deterministic gzip (ISA-L) and zstd;
* :mod:`strata.image.unpack` -- :func:`unpack_layer`, applying layers safely;
* :mod:`strata.image.errors` -- :class:`LayerError`, :class:`UnsafePathError`.
"""
