"""What each tag of a repository points to, as the stream planner needs it (pure)."""

from __future__ import annotations

from strata.release.model import RepositoryTags, is_cosign_tag
from strata.release.nvr import NVR, InvalidNVR
from strata.release.streams import TagKind, TagState, classify_tag


def tag_states(repo: RepositoryTags) -> dict[str, TagState]:
    """Each tag with the NVR of its digest.

    A digest's NVR comes from the registered builds, else from an NVR tag pointing at it
    (``130-1.f25docker`` names its own version and release). Tags pointing at builds whose
    NVR is unknown either way (pushed before the image was managed, cosign tags) are left out.
    """
    nvr_of: dict[str, NVR] = dict(repo.build_nvrs)
    for tag, digest in repo.tags.items():
        if is_cosign_tag(tag):
            continue
        if digest not in nvr_of and classify_tag(tag) is TagKind.NVR and tag.count("-") == 1:
            version, release = tag.split("-")
            try:
                nvr_of[digest] = NVR(repo.image_name, version, release)
            except InvalidNVR:
                continue
    return {tag: TagState(tag, digest, nvr_of[digest])
            for tag, digest in repo.tags.items() if digest in nvr_of and not is_cosign_tag(tag)}
