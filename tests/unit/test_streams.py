"""Release-stream rules: release planning, rollbacks and the registry write policy."""

from __future__ import annotations

import hashlib
import pickle
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from strata.release.nvr import NVR
from strata.release.streams import (
    NAME_TAG,
    Candidate,
    Rule,
    Skip,
    StreamPlan,
    StreamViolation,
    TagKind,
    TagMove,
    TagState,
    check_content_delete,
    check_registry_write,
    classify_tag,
    plan_release,
    plan_rollback,
)

NAME = "f25/cockpit"
NO_EOL: frozenset[str] = frozenset()


def nvr(vr: str, name: str = NAME) -> NVR:
    version, release = vr.split("-")
    return NVR(name, version, release)


def digest(vr: str, salt: str = "") -> str:
    return "sha256:" + hashlib.sha256((vr + salt).encode()).hexdigest()


def cand(vr: str, salt: str = "", name: str = NAME) -> Candidate:
    return Candidate(nvr(vr, name), digest(vr, salt))


def repo(released: Iterable[str], **floating: str) -> dict[str, TagState]:
    """NVR tags for ``released``, plus floating tags (``latest=...``, ``v130=...``)."""
    current = {vr: TagState(vr, digest(vr), nvr(vr)) for vr in released}
    for key, vr in floating.items():
        tag = key if key == NAME_TAG else key.removeprefix("v").replace("_", ".")
        current[tag] = TagState(tag, digest(vr), nvr(vr))
    return current


def apply(current: Mapping[str, TagState], plan: StreamPlan) -> dict[str, TagState]:
    result = dict(current)
    for move in plan.moves:
        result[move.tag] = TagState(move.tag, move.new_digest, move.new_nvr)
    return result


def moved(plan: StreamPlan) -> dict[str, str]:
    return {m.tag: m.new_nvr.version_release for m in plan.moves}


def skipped(plan: StreamPlan) -> dict[str, str]:
    return {s.tag: s.reason for s in plan.skips}


# --- classify_tag ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "kind"),
    [
        ("130-1.f25docker", TagKind.NVR),
        ("1-1", TagKind.NVR),
        ("latest", TagKind.NAME),
        ("130", TagKind.VERSION),
        ("1.10", TagKind.VERSION),
        ("Latest", TagKind.VERSION),
        ("latest-1", TagKind.NVR),
    ],
)
def test_classify_tag(tag: str, kind: TagKind) -> None:
    assert classify_tag(tag) is kind


# --- plan_release ---------------------------------------------------------------------------


def test_first_release_creates_all_three_streams() -> None:
    plan = plan_release({}, [cand("130-1.f25docker")], NO_EOL)
    assert plan.moves == (
        TagMove(
            "130-1.f25docker",
            TagKind.NVR,
            None,
            digest("130-1.f25docker"),
            None,
            nvr("130-1.f25docker"),
        ),
        TagMove(
            "130", TagKind.VERSION, None, digest("130-1.f25docker"), None, nvr("130-1.f25docker")
        ),
        TagMove(
            "latest", TagKind.NAME, None, digest("130-1.f25docker"), None, nvr("130-1.f25docker")
        ),
    )
    assert plan.skips == ()


def test_new_release_moves_floating_tags_forward() -> None:
    current = repo(["130-1"], v130="130-1", latest="130-1")
    plan = plan_release(current, [cand("130-2")], NO_EOL)
    assert moved(plan) == {"130-2": "130-2", "130": "130-2", "latest": "130-2"}
    move = plan.move_for("latest")
    assert move is not None
    assert (move.old_digest, move.old_nvr) == (digest("130-1"), nvr("130-1"))
    assert plan.move_for("130-2") == TagMove(
        "130-2", TagKind.NVR, None, digest("130-2"), None, nvr("130-2")
    )


def test_respin_of_older_version_moves_its_version_tag_but_not_latest() -> None:
    current = repo(["129-1", "130-1"], v129="129-1", v130="130-1", latest="130-1")
    plan = plan_release(current, [cand("129-2.1")], NO_EOL)
    assert moved(plan) == {"129-2.1": "129-2.1", "129": "129-2.1"}
    assert skipped(plan) == {"latest": "would move backwards from 130-1 to 129-2.1"}


def test_floating_tags_never_move_backwards() -> None:
    current = repo(["130-2"], v130="130-2", latest="130-2")
    plan = plan_release(current, [cand("130-1")], NO_EOL)
    assert moved(plan) == {"130-1": "130-1"}  # the NVR tag is still written
    assert skipped(plan) == {
        "130": "would move backwards from 130-2 to 130-1",
        "latest": "would move backwards from 130-2 to 130-1",
    }


def test_forward_is_rpm_order_not_string_order() -> None:
    current = repo(["1.9-9"], v1_9="1.9-9", latest="1.9-9")
    plan = plan_release(current, [cand("1.10-1")], NO_EOL)
    assert moved(plan) == {"1.10-1": "1.10-1", "1.10": "1.10-1", "latest": "1.10-1"}
    plan = plan_release(repo(["130-9"], v130="130-9"), [cand("130-10")], NO_EOL)
    assert moved(plan)["130"] == "130-10"


def test_eol_stream_is_frozen_and_does_not_move_latest() -> None:
    current = repo(["129-1", "130-1"], v129="129-1", v130="130-1", latest="130-1")
    plan = plan_release(current, [cand("129-3")], frozenset({"129"}))
    assert moved(plan) == {"129-3": "129-3"}
    assert skipped(plan) == {
        "129": "stream 129 is end-of-life",
        "latest": "every candidate's stream is end-of-life (129)",
    }


def test_ending_the_newest_stream_leaves_latest_where_it_is() -> None:
    eol = frozenset({"130"})
    current = repo(["129-1", "130-1"], v129="129-1", v130="130-1", latest="130-1")
    # a newer build of the EOL version does not move anything floating
    plan = plan_release(current, [cand("130-2")], eol)
    assert moved(plan) == {"130-2": "130-2"}
    assert set(skipped(plan)) == {"130", "latest"}
    # a build of an older live version moves its own stream only
    plan = plan_release(current, [cand("129-2")], eol)
    assert moved(plan) == {"129-2": "129-2", "129": "129-2"}
    assert skipped(plan) == {"latest": "would move backwards from 130-1 to 129-2"}
    # a build of a newer live version moves latest again
    plan = plan_release(current, [cand("131-1")], eol)
    assert moved(plan) == {"131-1": "131-1", "131": "131-1", "latest": "131-1"}


def test_several_candidates_in_one_release() -> None:
    current = repo(["129-1", "130-1"], v129="129-1", v130="130-1", latest="130-1")
    plan = plan_release(current, [cand("130-3"), cand("129-2"), cand("130-2")], NO_EOL)
    assert [m.tag for m in plan.moves] == ["129-2", "130-2", "130-3", "129", "130", "latest"]
    assert moved(plan) == {
        "129-2": "129-2",
        "130-2": "130-2",
        "130-3": "130-3",
        "129": "129-2",
        "130": "130-3",
        "latest": "130-3",
    }
    assert plan.skips == ()


def test_several_candidates_latest_takes_newest_live_one() -> None:
    plan = plan_release({}, [cand("130-3"), cand("129-2")], frozenset({"130"}))
    assert moved(plan) == {"129-2": "129-2", "130-3": "130-3", "129": "129-2", "latest": "129-2"}
    assert skipped(plan) == {"130": "stream 130 is end-of-life"}
    current = repo(["130-1"], v130="130-1", latest="130-1")
    plan = plan_release(current, [cand("130-3"), cand("129-2")], frozenset({"130"}))
    assert skipped(plan)["latest"] == "would move backwards from 130-1 to 129-2"


def test_output_order_is_deterministic_and_rpm_sorted() -> None:
    vrs = ["1.10-1", "1.9-1", "1.9-10", "1.9-2", "2-1", "10-1"]
    plans = set()
    for seed in range(10):
        shuffled = [cand(vr) for vr in vrs]
        random.Random(seed).shuffle(shuffled)
        plans.add(
            plan_release(
                {"1.9": TagState("1.9", digest("1.9-5"), nvr("1.9-5"))}, shuffled, frozenset({"2"})
            )
        )
    assert len(plans) == 1
    (plan,) = plans
    assert [m.tag for m in plan.moves] == [
        "1.9-1",
        "1.9-2",
        "1.9-10",
        "1.10-1",
        "2-1",
        "10-1",
        "1.9",
        "1.10",
        "10",
        "latest",
    ]
    assert [s.tag for s in plan.skips] == ["2"]


def test_existing_nvr_tag_with_same_digest_is_skipped() -> None:
    current = repo(["130-1"], v130="130-1", latest="130-1")
    plan = plan_release(current, [cand("130-1")], NO_EOL)
    assert plan.moves == ()
    assert set(skipped(plan)) == {"130-1", "130", "latest"}
    assert all("already points there" in reason for reason in skipped(plan).values())


def test_rerunning_a_release_is_idempotent() -> None:
    current = repo(["129-1"], v129="129-1", latest="129-1")
    candidates = [cand("129-2"), cand("130-1")]
    after = apply(current, plan_release(current, candidates, NO_EOL))
    again = plan_release(after, candidates, NO_EOL)
    assert again.moves == ()
    assert [s.tag for s in again.skips] == ["129-2", "130-1", "129", "130", "latest"]


def test_existing_nvr_tag_with_other_digest_is_a_violation() -> None:
    current = repo(["130-1.f25docker"])
    with pytest.raises(StreamViolation) as info:
        plan_release(current, [cand("130-1.f25docker", salt="rebuilt")], NO_EOL)
    assert info.value.rule == Rule.NVR_IMMUTABLE
    assert info.value.rule == "nvr-immutable"
    assert "tag 130-1.f25docker is a Name-Version-Release tag and is immutable" in str(info.value)


def test_candidates_must_share_one_name() -> None:
    with pytest.raises(StreamViolation) as info:
        plan_release({}, [cand("130-1"), cand("130-2", name="f25/other")], NO_EOL)
    assert info.value.rule == Rule.SINGLE_NAME


def test_duplicate_candidates() -> None:
    plan = plan_release({}, [cand("130-1"), cand("130-1")], NO_EOL)
    assert [m.tag for m in plan.moves] == ["130-1", "130", "latest"]
    with pytest.raises(StreamViolation) as info:
        plan_release({}, [cand("130-1"), cand("130-1", salt="other")], NO_EOL)
    assert info.value.rule == Rule.CANDIDATE_CONFLICT


def test_candidates_rpm_cannot_order_are_a_violation() -> None:
    with pytest.raises(StreamViolation) as info:
        plan_release({}, [cand("1.0-1"), cand("1.00-01")], NO_EOL)
    assert info.value.rule == Rule.AMBIGUOUS_ORDER


def test_rpm_equal_to_current_is_not_forward() -> None:
    current = repo(["1.0-1"], v1_0="1.0-1", latest="1.0-1")
    plan = plan_release(current, [cand("1.0-01")], NO_EOL)
    assert moved(plan) == {"1.0-01": "1.0-01"}
    assert skipped(plan) == {
        "1.0": "1.0-01 is not newer than 1.0-1",
        "latest": "1.0-01 is not newer than 1.0-1",
    }


@pytest.mark.parametrize("vr", ["1.0~rc1-1", "1.0-1+b1", "latest-1"])
def test_candidates_must_be_tag_safe(vr: str) -> None:
    with pytest.raises(StreamViolation) as info:
        plan_release({}, [cand(vr)], NO_EOL)
    assert info.value.rule == Rule.TAG_SAFE


def test_no_candidates_no_plan() -> None:
    assert plan_release(repo(["1-1"], latest="1-1"), [], NO_EOL) == StreamPlan((), ())


def test_inconsistent_current_state_is_rejected() -> None:
    with pytest.raises(ValueError, match="describes tag"):
        plan_release(
            {"130": TagState("131", digest("131-1"), nvr("131-1"))}, [cand("130-1")], NO_EOL
        )


def test_stream_violation_is_an_exception_and_pickles() -> None:
    violation = StreamViolation(Rule.NVR_IMMUTABLE, "nope")
    assert isinstance(violation, Exception)
    copy = pickle.loads(pickle.dumps(violation))
    assert (copy.rule, copy.message, str(copy)) == ("nvr-immutable", "nope", "nope")


# --- a simulated history: the invariants hold for any sequence of releases ------------------

VERSIONS = ["1.9", "1.10", "2", "2.0.1", "10"]
RELEASES = ["1", "2", "10", "1.el9", "1.1"]
vr_strategy = st.tuples(st.sampled_from(VERSIONS), st.sampled_from(RELEASES)).map("-".join)


@given(
    st.lists(st.lists(vr_strategy, min_size=1, max_size=4), max_size=6),
    st.frozensets(st.sampled_from(VERSIONS), max_size=2),
)
def test_release_history_invariants(batches: list[list[str]], eol: frozenset[str]) -> None:
    current: dict[str, TagState] = {}
    released: list[NVR] = []
    for batch in batches:
        plan = plan_release(current, [cand(vr) for vr in batch], eol)
        for move in plan.moves:
            if move.kind is TagKind.NVR:
                assert move.old_digest is None
            else:
                assert move.old_nvr is None or move.new_nvr > move.old_nvr
                assert move.new_nvr.version not in eol
        current = apply(current, plan)
        released.extend(nvr(vr) for vr in batch)
    for item in released:
        assert current[item.tag].digest == digest(item.tag)
    for version in VERSIONS:
        builds = [n for n in released if n.version == version]
        if version in eol or not builds:
            assert version not in current
        else:
            assert current[version].nvr == max(builds)
    live = [n for n in released if n.version not in eol]
    if live:
        assert current[NAME_TAG].nvr == max(live)
    else:
        assert NAME_TAG not in current


# --- plan_rollback --------------------------------------------------------------------------

HISTORY = repo(["129-1", "130-1", "130-2"], v129="129-1", v130="130-2", latest="130-2")


def test_rollback_version_tag() -> None:
    move = plan_rollback(HISTORY, "130", HISTORY["130-1"])
    assert move == TagMove(
        "130", TagKind.VERSION, digest("130-2"), digest("130-1"), nvr("130-2"), nvr("130-1")
    )


def test_rollback_latest_to_another_version() -> None:
    move = plan_rollback(HISTORY, "latest", cand("129-1"))
    assert move == TagMove(
        "latest", TagKind.NAME, digest("130-2"), digest("129-1"), nvr("130-2"), nvr("129-1")
    )


@pytest.mark.parametrize(
    ("tag", "target", "rule"),
    [
        ("130-2", cand("130-1"), Rule.ROLLBACK_FLOATING_ONLY),
        ("131", cand("130-1"), Rule.ROLLBACK_UNKNOWN_TAG),
        ("130", cand("129-1"), Rule.ROLLBACK_SAME_VERSION),
        ("130", cand("130-0"), Rule.ROLLBACK_RELEASED_ONLY),
        ("130", cand("130-1", salt="other build"), Rule.ROLLBACK_RELEASED_ONLY),
        ("130", cand("130-2"), Rule.ROLLBACK_BACKWARDS_ONLY),
        ("129", cand("129-1"), Rule.ROLLBACK_BACKWARDS_ONLY),
        ("latest", cand("130-2"), Rule.ROLLBACK_BACKWARDS_ONLY),
    ],
)
def test_rollback_restrictions(tag: str, target: Candidate, rule: Rule) -> None:
    with pytest.raises(StreamViolation) as info:
        plan_rollback(HISTORY, tag, target)
    assert info.value.rule == rule


def test_rollback_forward_is_refused() -> None:
    current = dict(HISTORY, latest=TagState("latest", digest("129-1"), nvr("129-1")))
    with pytest.raises(StreamViolation) as info:
        plan_rollback(current, "latest", cand("130-2"))
    assert info.value.rule == Rule.ROLLBACK_BACKWARDS_ONLY


# --- check_registry_write -------------------------------------------------------------------

A, B = "sha256:" + "a" * 64, "sha256:" + "b" * 64
NVR_TAG = "130-1.f25docker"


S = Rule.STREAM_TAGS_RELEASE_ONLY
COSIGN = "sha256-" + "c" * 64 + ".att"
SIGNATURE = "sha256-" + "c" * 64 + ".sig"
G = Rule.SIGNATURES_RELEASE_ONLY


@pytest.mark.parametrize("engine", [False, True])
@pytest.mark.parametrize(
    ("tag", "existing", "new", "rule_for_user", "rule_for_engine"),
    [
        # NVR tags: never written through /v2/; the engine creates them, never moves/deletes
        (NVR_TAG, None, A, S, None),
        (NVR_TAG, A, A, None, None),
        (NVR_TAG, A, B, S, Rule.NVR_IMMUTABLE),
        (NVR_TAG, A, None, S, Rule.NVR_NO_DELETE),
        (NVR_TAG, None, None, None, None),
        # floating tags: the release engine only
        ("130", None, A, S, None),
        ("130", A, B, S, None),
        ("130", A, None, S, None),
        ("130", A, A, None, None),
        ("130", None, None, None, None),
        ("latest", None, A, S, None),
        ("latest", A, B, S, None),
        ("latest", A, None, S, None),
        ("latest", A, A, None, None),
        # cosign / referrers fallback tags are not streams
        (COSIGN, None, A, None, None),
        (COSIGN, A, B, None, None),
        (COSIGN, A, None, None, None),
        # signature tags (issue 16): the release's alone, never through /v2/
        (SIGNATURE, None, A, G, None),
        (SIGNATURE, A, B, G, None),
        (SIGNATURE, A, None, G, None),
        (SIGNATURE, A, A, None, None),
        # anything else in the tag grammar is a stream tag
        ("sha256-" + "c" * 64 + ".exe", A, B, S, Rule.NVR_IMMUTABLE),
        ("v1.0_beta", None, A, S, None),
    ],
)
def test_registry_write_policy(
    tag: str,
    existing: str | None,
    new: str | None,
    rule_for_user: Rule | None,
    rule_for_engine: Rule | None,
    engine: bool,
) -> None:
    expected = rule_for_engine if engine else rule_for_user
    violation = check_registry_write(tag, existing, new, by_release_engine=engine)
    if expected is None:
        assert violation is None
    else:
        assert isinstance(violation, StreamViolation)
        assert violation.rule == expected
        assert tag in str(violation)


def test_registry_write_messages_say_what_to_do_instead() -> None:
    v = check_registry_write(NVR_TAG, None, A, by_release_engine=False, repository="f25/x")
    assert v is not None and v.rule == "stream-tags-release-only"
    assert str(v).startswith(f"tag {NVR_TAG} is a Name-Version-Release stream tag of the "
                             "release-managed repository f25/x, and only the release engine "
                             "writes stream tags")
    assert f"`strata candidate add f25/x@{A}`" in str(v)
    v = check_registry_write("130", A, None, by_release_engine=False, repository="f25/x")
    assert v is not None and "strata release rollback f25/x:130" in str(v)
    v = check_registry_write(NVR_TAG, A, None, by_release_engine=False, repository="f25/x")
    assert v is not None and "never deleted" in str(v)
    v = check_registry_write(NVR_TAG, A, None, by_release_engine=True)
    assert v is not None and "can never be deleted" in str(v)
    v = check_registry_write(NVR_TAG, A, B, by_release_engine=True)
    assert v is not None and str(v).startswith(
        f"tag {NVR_TAG} is a Name-Version-Release tag and is immutable")


@dataclass(frozen=True)
class H:
    digest: str
    build_status: str | None = None
    nvr: str | None = None
    tags: tuple[str, ...] = ()


@pytest.mark.parametrize(
    ("holders", "is_blob", "refused"),
    [
        ([], True, False),
        ([H(A)], False, False),  # an untagged manifest nobody registered
        ([H(A, "candidate", "x-1-1")], False, True),  # pending build
        ([H(A, "released", "x-1-1", (NVR_TAG,))], False, True),
        ([H(A, "withdrawn", "x-1-1")], False, False),  # withdrawn: may go
        ([H(A, tags=(NVR_TAG,))], False, False),  # its own tags: judged tag by tag
        ([H(A), H(B, tags=("latest",))], False, True),  # child of a tagged index
        ([H(A), H(B, tags=(COSIGN,))], False, False),  # child of a signature only
        ([H(B, "candidate", "x-1-1")], True, True),  # a layer of a pending build
        ([H(B, tags=(NVR_TAG,))], True, True),  # a layer of a tagged manifest
        ([H(B, "withdrawn", "x-1-1")], True, False),
    ],
)
def test_content_delete(holders: list[H], is_blob: bool, refused: bool) -> None:
    target = "sha256:" + "f" * 64 if is_blob else A
    violation = check_content_delete(target, holders, repository="f25/x", is_blob=is_blob)
    assert (violation is not None) is refused
    if violation is not None:
        assert violation.rule == Rule.BUILD_PROTECTED == "build-protected"
        assert target in str(violation)


def test_content_delete_messages() -> None:
    v = check_content_delete(A, [H(A, "candidate", "x-1-1")], repository="f25/x",
                             is_blob=False)
    assert v is not None and str(v) == (
        f"manifest {A} of f25/x is build x-1-1, pending release: withdraw it first "
        f"(`strata candidate withdraw f25/x@{A} --reason TEXT`); garbage collection then "
        "removes what nothing else uses")
    blob = "sha256:" + "f" * 64
    v = check_content_delete(blob, [H(A, "released", "x-1-1")], repository="f25/x",
                             is_blob=True)
    assert v is not None and str(v).startswith(
        f"blob {blob} of f25/x is part of {A}, which is build x-1-1, released")


def test_skip_is_plain_data() -> None:
    assert Skip("129", "stream 129 is end-of-life") == Skip("129", "stream 129 is end-of-life")
