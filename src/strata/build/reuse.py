"""Reusing an unchanged build: the same inputs give the candidate that already exists.

A build is described by its *inputs* -- the source commit, the context's place in the
repository, the Containerfile (path and digest), the build arguments, the target stage,
the ``RUN`` network, the compression, ``SOURCE_DATE_EPOCH`` and the digest of every image
it pulls (the base).  They are written into the build record (``"inputs"``).  Before
building, ``strata build`` lists the repository's builds of that version through the
JSON API (``GET /api/v1/candidates?status=all``), reads each one's build record through
the referrers API (artifact type ``application/vnd.strata.build-record.v1+json``) and
returns the newest build whose record has the same inputs instead of building a new
release (``--rebuild`` skips this).  Only a clean git checkout is reused: without a
commit, or with changed or untracked files, the commit does not describe the image.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any

from strata.build.builder import BuildOptions, Plan
from strata.build.context import Source
from strata.build.record import RECORD_ARTIFACT_TYPE
from strata.client.registry import ClientError, RegistryClient, sha256

__all__ = ["REUSABLE_STATUSES", "Reusable", "build_inputs", "find_reusable", "read_record"]

#: builds that can be handed out again (a withdrawn one is not)
REUSABLE_STATUSES = ("candidate", "released")


@dataclass(frozen=True)
class Reusable:
    build: dict[str, Any]  # the candidate, as the JSON API lists it
    record: dict[str, Any]
    record_digest: str


def build_inputs(source: Source, plan: Plan, opts: BuildOptions) -> dict[str, Any] | None:
    """What the image is a function of, or None when it cannot be reused (no commit, or a
    checkout that differs from it)."""
    if source.commit is None or source.dirty:
        return None
    return {
        "commit": source.commit,
        "context": source.prefix,
        "containerfile": os.path.relpath(source.containerfile, source.root),
        "containerfile_digest": sha256(plan.text.encode()),
        "build_args": dict(sorted(opts.build_args.items())),
        "target": opts.target,
        "network": opts.network,
        "compression": opts.compression,
        "source_date_epoch": source.source_date_epoch,
        "images": {ref: image.digest for ref, image in sorted(plan.images.items())},
    }


async def read_record(client: RegistryClient, repo: str, digest: str
                      ) -> tuple[dict[str, Any], str] | None:
    """The build record referring to ``repo@digest`` (and its manifest digest), if any."""
    try:
        index = await client.referrers(repo, digest, artifact_type=RECORD_ARTIFACT_TYPE)
        for entry in index.get("manifests", []):
            if entry.get("artifactType") != RECORD_ARTIFACT_TYPE:
                continue
            manifest = (await client.get_manifest(repo, str(entry["digest"]))).json()
            blob = await client.get_blob(repo, str(manifest["layers"][0]["digest"]))
            record = json.loads(blob)
            if isinstance(record, dict):
                return record, str(entry["digest"])
    except (ClientError, KeyError, IndexError, TypeError, ValueError):
        return None
    return None


def _newest_first(build: dict[str, Any]) -> tuple[int, str]:
    number = re.match(r"\d+", str(build.get("release") or ""))
    return -(int(number.group()) if number else 0), str(build.get("created_at") or "")


async def find_reusable(client: RegistryClient, repo: str, version: str,
                        builds: list[dict[str, Any]], inputs: dict[str, Any]
                        ) -> Reusable | None:
    """The newest (highest release) of *builds* (the repository's, from the JSON API) of
    *version* whose build record has *inputs* and whose manifest is still there."""
    same_version = [b for b in builds
                    if b.get("version") == version and b.get("status") in REUSABLE_STATUSES]
    same_version.sort(key=_newest_first)
    for build in same_version:
        digest = str(build.get("digest"))
        found = await read_record(client, repo, digest)
        if found is None:
            continue
        record, record_digest = found
        if record.get("inputs") != inputs or (record.get("image") or {}).get("digest") != digest:
            continue
        try:
            if await client.head_manifest(repo, digest) is None:
                continue
        except ClientError:
            continue
        return Reusable(build, record, record_digest)
    return None
