"""The human output of ``strata release plan`` / ``publish`` names left-out builds and images
whose streams did not move (issue 11)."""

from __future__ import annotations

from strata.cli.release_cmds import _plan_text, _published_text

LEFT = {"repository": "f25/x", "nvr": "x-130-1.f25docker", "digest": "sha256:" + "a" * 64,
        "reason": "manifest-missing: sha256:aaa is no longer in the registry"}


def test_plan_names_left_out_builds() -> None:
    plan = {"plans": [{
        "namespace": {"name": "f25", "dist_tag": "f25docker", "interval_days": 14,
                      "anchor": "2025-06-10"},
        "last_published": None, "release": "f25-2025-06-10",
        "next": [{"date": "2025-06-10", "name": "f25-2025-06-10", "due": False}],
        "images": [{"repository": "f25/x", "builds": [], "problem": None, "moves": [],
                    "skips": [], "left_out": [LEFT]}],
        "waiting": []}]}
    text = _plan_text(plan)
    assert "f25/x: LEFT OUT x-130-1.f25docker: manifest-missing" in text


def test_publish_output_names_left_out_builds_and_unmoved_streams() -> None:
    published = {"name": "f25-2025-06-10", "kind": "scheduled", "notes": {
        "images": [{"repository": "f25/y", "streams_moved": False, "tags": [
            {"tag": "1-0.f25docker", "old_nvr": None, "new_nvr": "y-1-0.f25docker"}]}],
        "left_out": [LEFT]}}
    text = _published_text(published)
    assert "f25/y: no stream moved" in text
    assert "left out (still pending): f25/x x-130-1.f25docker: manifest-missing" in text
