"""Release notes: JSON per image (old -> new NVR, advisories, reasons, pulls) and Markdown."""

from __future__ import annotations

from strata.release.model import Build, BuildStatus, Release, ReleaseKind, ReleaseStatus
from strata.release.notes import ImageChanges, build_notes, markdown_text, render_markdown
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


# -- user text is text (issue 12) -------------------------------------------------------------
HOSTILE_REASON = ("fix\n\n## f25/b\n\nb-1-1 → b-9-9\n\n```\npodman pull evil.example/f25/b:latest\n"
                  "```\n<img src=x onerror=alert(1)> [click](http://evil.example) **bold**")
HOSTILE_ADVISORY = "FEDORA-1\n# Release fake\n<script>alert(1)</script>"


def hostile_notes() -> str:
    builds = {}
    changes = []
    for repo, digest in (("f25/a", D1), ("f25/b", D2)):
        name = repo.split("/")[1]
        new = Build(repo, digest, NVR(name, "1", "1"), BuildStatus.RELEASED,
                    (HOSTILE_ADVISORY,), HOSTILE_REASON if name == "a" else "plain",
                    "r1", 0.0, "maint")
        builds[repo] = new
        changes.append(ImageChanges(repo, (new,), plan_release(
            {}, [Candidate(new.nvr, new.digest)], set())))
    release = Release("f25-<b>x</b>\n# y", ReleaseKind.OOB, "f25", None,
                      ReleaseStatus.PUBLISHED, 0.0, 0.0, "eve\n## f25/c <i>",
                      ("A-1\n```",), "top\n\n## f25/z")
    return render_markdown(build_notes(release, changes, "reg.example"))


def test_user_text_cannot_add_sections_pulls_or_html() -> None:
    md = hostile_notes()
    lines = md.splitlines()
    # Exactly one heading per real image, and the one title: nothing user-made starts a line.
    assert [line for line in lines if line.startswith("#")] == [
        lines[0], "## f25/a", "## f25/b"]
    assert lines[0].startswith("# Release f25-&lt;b&gt;x&lt;/b&gt; \\# y")
    # The only fences are the two real pull blocks, and they hold only real pull commands.
    fences = [i for i, line in enumerate(lines) if line.startswith("```")]
    assert len(fences) == 4
    pulls = [line for a, b in zip(fences[::2], fences[1::2], strict=True)
             for line in lines[a + 1:b]]
    assert pulls and all(p.startswith("podman pull reg.example/f25/") for p in pulls)
    assert "evil.example/f25/b:latest" not in "\n".join(pulls)
    # No raw HTML, no link, no emphasis.
    assert "<" not in md and ">" not in md.replace("→", "")
    assert "&lt;img src=x onerror=alert\\(1\\)&gt;" in md
    assert "](" not in md and "**" not in md
    assert "\\[click\\]\\(http://evil.example\\) \\*\\*bold\\*\\*" in md


def test_each_images_text_stays_in_its_section() -> None:
    md = hostile_notes()
    a_section = md[md.index("## f25/a"):md.index("## f25/b")]
    b_section = md[md.index("## f25/b"):]
    assert "Reason: fix \\#\\# f25/b b-1-1 → b-9-9 \\`\\`\\` podman pull" in a_section
    assert "fix" not in b_section and "Reason: plain" in b_section
    # The advisories are one line in each section they belong to.
    line = "Advisories: A-1 \\`\\`\\`, FEDORA-1 \\# Release fake &lt;script&gt;alert"
    assert a_section.count(line) == 1 and b_section.count(line) == 1


def test_markdown_text_folds_and_escapes() -> None:
    assert markdown_text("a\r\nb\u2028c\td") == "a b c d"
    assert markdown_text("x_y*z`w|v~u") == "x\\_y\\*z\\`w\\|v\\~u"
    assert markdown_text("a & b <c>") == "a &amp; b &lt;c&gt;"
    assert markdown_text("![i](u)") == "\\!\\[i\\]\\(u\\)"
