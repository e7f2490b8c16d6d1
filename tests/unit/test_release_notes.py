"""Release notes: JSON per image (old -> new NVR, advisories, reasons, pulls) and Markdown."""

from __future__ import annotations

from strata.release.model import Build, BuildStatus, Release, ReleaseKind, ReleaseStatus
from strata.release.notes import ImageChanges, build_notes, render_markdown
from strata.release.nvr import NVR
from strata.release.streams import Candidate, TagState, plan_release

D1, D2, D3 = ("sha256:" + c * 64 for c in "123")


def build(version: str, release: str, digest: str, advisories: tuple[str, ...] = ()) -> Build:
    return Build("f25/cockpit", digest, NVR("cockpit", version, release), BuildStatus.RELEASED,
                 advisories, "fix crash" if advisories else None, "r1", 0.0, "maint")


def test_notes_of_a_security_release() -> None:
    old = NVR("cockpit", "130", "1.f25docker")
    current = {t: TagState(t, D1, old) for t in ("130-1.f25docker", "130", "latest")}
    new = build("130", "2.f25docker", D2, ("FEDORA-2025-7",))
    plan = plan_release(current, [Candidate(new.nvr, new.digest)], set())
    release = Release("f25-security-2025-06-02-1", ReleaseKind.OOB, "f25", None,
                      ReleaseStatus.PUBLISHED, 0.0, 1748854800.0, "releng", ("FEDORA-2025-7",),
                      "CVE-2025-1234")
    notes = build_notes(release, [ImageChanges("f25/cockpit", (new,), plan)], "reg.example")
    [image] = notes["images"]
    assert image["old_nvr"] == "cockpit-130-1.f25docker"
    assert image["new_nvr"] == "cockpit-130-2.f25docker"
    assert image["advisories"] == ["FEDORA-2025-7"]
    assert image["reasons"] == ["CVE-2025-1234", "fix crash"]
    assert image["pull"] == [f"podman pull reg.example/f25/cockpit:{t}"
                             for t in ("130-2.f25docker", "130", "latest")]
    assert [(t["tag"], t["old_nvr"]) for t in image["tags"]] == [
        ("130-2.f25docker", None), ("130", "cockpit-130-1.f25docker"),
        ("latest", "cockpit-130-1.f25docker")]
    assert notes["published_at"] == "2025-06-02T09:00:00Z"
    md = render_markdown(notes)
    assert md.startswith("# Release f25-security-2025-06-02-1\n")
    assert "Out-of-band security release of namespace `f25`" in md
    assert "cockpit-130-1.f25docker → cockpit-130-2.f25docker" in md
    assert "| `latest` | Name | 130-1.f25docker | 130-2.f25docker |" in md
    assert "podman pull reg.example/f25/cockpit:130" in md


def test_notes_of_an_empty_release() -> None:
    release = Release("f25-2025-06-10", ReleaseKind.SCHEDULED, "f25", None,
                      ReleaseStatus.PUBLISHED, 0.0, 0.0, "scheduler", (), None)
    notes = build_notes(release, [], "reg.example")
    assert notes["images"] == []
    assert "No images changed in this release." in render_markdown(notes)


def test_skips_are_listed() -> None:
    current = {"130-1.f25docker": TagState("130-1.f25docker", D1, NVR("c", "130", "1")),
               "latest": TagState("latest", D1, NVR("c", "130", "1"))}
    respin = build("129", "2", D3)
    plan = plan_release(current, [Candidate(NVR("cockpit", "129", "2"), D3)], set())
    release = Release("r", ReleaseKind.SCHEDULED, "f25", None, ReleaseStatus.PUBLISHED, 0.0,
                      0.0, "x", (), None)
    [image] = build_notes(release, [ImageChanges("f25/cockpit", (respin,), plan)], "h")["images"]
    assert [s["tag"] for s in image["skipped"]] == ["latest"]
    assert "`latest` unchanged: would move backwards" in render_markdown(
        build_notes(release, [ImageChanges("f25/cockpit", (respin,), plan)], "h"))
