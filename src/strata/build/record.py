"""The build record: what was built from what, how long it took, what is inside.

Kept as an OCI artifact next to the image (image-spec ``manifest.md``, "Guidelines for
Artifact Usage"): a manifest with ``artifactType``
``application/vnd.strata.build-record.v1+json``, the empty config and one layer -- the
record JSON -- whose ``subject`` is the image.  Anyone can find it with the referrers API
(``GET /v2/<repo>/referrers/<digest>``) and check it against the image, with any OCI
client; the image's digest does not depend on it (logs and durations vary, the image
must not).

OS packages are read from the image's own package databases: ``/var/lib/dpkg/status``
(Debian), ``/lib/apk/db/installed`` (Alpine) and the rpm SQLite database
(``/var/lib/rpm/rpmdb.sqlite`` or ``/usr/lib/sysimage/rpm/rpmdb.sqlite``), whose
``Packages`` blobs are rpm headers (tags NAME 1000, VERSION 1001, RELEASE 1002,
EPOCH 1003, ARCH 1022).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
import struct
import tempfile
from pathlib import Path
from typing import Any

from strata.build.fsview import MergedView
from strata.oci import mediatypes as mt

__all__ = ["RECORD_ARTIFACT_TYPE", "RECORD_MEDIA_TYPE", "os_packages", "record_manifest"]

RECORD_ARTIFACT_TYPE = mt.BUILD_RECORD
RECORD_MEDIA_TYPE = RECORD_ARTIFACT_TYPE
EMPTY_JSON = b"{}"

Package = dict[str, str]


def _dpkg(text: str) -> list[Package]:
    packages = []
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line[:1] not in (" ", "\t") and ":" in line:
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
        if fields.get("Package") and fields.get("Status", "").endswith(" installed"):
            packages.append({"name": fields["Package"], "version": fields.get("Version", ""),
                             "arch": fields.get("Architecture", ""), "type": "deb"})
    return packages


def _apk(text: str) -> list[Package]:
    packages = []
    for stanza in text.split("\n\n"):
        fields = {line[0]: line[2:] for line in stanza.splitlines() if line[1:2] == ":"}
        if fields.get("P"):
            packages.append({"name": fields["P"], "version": fields.get("V", ""),
                             "arch": fields.get("A", ""), "type": "apk"})
    return packages


def _rpm_header(blob: bytes) -> Package | None:
    count, size = struct.unpack_from(">II", blob, 0)
    data = blob[8 + 16 * count: 8 + 16 * count + size]
    values: dict[int, str] = {}
    for index in range(count):
        tag, kind, offset, _ = struct.unpack_from(">iiii", blob, 8 + 16 * index)
        if tag not in (1000, 1001, 1002, 1003, 1022):
            continue
        if kind == 4:  # INT32
            values[tag] = str(struct.unpack_from(">i", data, offset)[0])
        elif kind in (6, 8, 9):  # STRING, STRING_ARRAY, I18NSTRING: first string
            values[tag] = data[offset: data.index(b"\0", offset)].decode("utf-8", "replace")
    if 1000 not in values:
        return None
    version = f"{values.get(1001, '')}-{values.get(1002, '')}"
    if values.get(1003):
        version = f"{values[1003]}:{version}"
    return {"name": values[1000], "version": version, "arch": values.get(1022, ""),
            "type": "rpm"}


def _rpm(data: bytes) -> list[Package]:
    with tempfile.TemporaryDirectory(prefix="strata-rpmdb.") as tmp:
        path = Path(tmp) / "rpmdb.sqlite"
        path.write_bytes(data)
        packages = []
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro&immutable=1",
                                                uri=True)) as db:
            for (blob,) in db.execute("SELECT blob FROM Packages"):
                with contextlib.suppress(struct.error, ValueError, IndexError):
                    header = _rpm_header(bytes(blob))
                    if header is not None:
                        packages.append(header)
        return packages


def os_packages(view: MergedView) -> list[Package]:
    """Installed OS packages, sorted by name then version (empty if no database)."""
    found: list[Package] = []
    status = view.read("/var/lib/dpkg/status")
    if status is not None:
        found += _dpkg(status.decode("utf-8", "replace"))
    apk = view.read("/lib/apk/db/installed")
    if apk is not None:
        found += _apk(apk.decode("utf-8", "replace"))
    for path in ("/var/lib/rpm/rpmdb.sqlite", "/usr/lib/sysimage/rpm/rpmdb.sqlite"):
        data = view.read(path, limit=1 << 30)
        if data is not None:
            with contextlib.suppress(sqlite3.Error):
                found += _rpm(data)
            break
    return sorted(found, key=lambda p: (p["name"], p["version"], p["arch"]))


def record_manifest(record: bytes, subject: dict[str, Any]) -> bytes:
    """The artifact manifest of a record blob, referring to the image *subject*."""
    manifest = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "artifactType": RECORD_ARTIFACT_TYPE,
        "config": {"mediaType": mt.OCI_EMPTY, "digest": mt.EMPTY_JSON_DIGEST,
                   "size": len(EMPTY_JSON)},
        "layers": [{"mediaType": RECORD_MEDIA_TYPE, "digest": _digest(record),
                    "size": len(record)}],
        "subject": subject,
    }
    return json.dumps(manifest, separators=(",", ":")).encode()


def _digest(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"
